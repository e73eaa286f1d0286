//! Money arithmetic on the contract's `Money` (units + nanos), exact in i128.

use shop_contracts::v1::Money;
use workmesh::ConnectError;

const NANOS_PER_UNIT: i128 = 1_000_000_000;

/// The sum of `price × quantity` over the lines; all prices must share one currency.
pub fn total<'a>(lines: impl IntoIterator<Item = (&'a Money, u32)>) -> Result<Money, ConnectError> {
    let mut currency: Option<&str> = None;
    let mut nanos: i128 = 0;
    for (price, quantity) in lines {
        match currency {
            None => currency = Some(&price.currency_code),
            Some(c) if c != price.currency_code => {
                return Err(ConnectError::failed_precondition(format!(
                    "items are priced in different currencies ({c} and {})",
                    price.currency_code
                )))
            }
            Some(_) => {}
        }
        let unit = i128::from(price.units) * NANOS_PER_UNIT + i128::from(price.nanos);
        nanos += unit * i128::from(quantity);
    }
    let units = i64::try_from(nanos / NANOS_PER_UNIT)
        .map_err(|_| ConnectError::invalid_argument("order total is out of range"))?;
    Ok(Money {
        currency_code: currency.unwrap_or_default().to_string(),
        units,
        nanos: (nanos % NANOS_PER_UNIT) as i32,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eur(units: i64, nanos: i32) -> Money {
        Money {
            currency_code: "EUR".into(),
            units,
            nanos,
        }
    }

    #[test]
    fn sums_units_and_nanos_with_carry() {
        let a = eur(89, 990_000_000);
        let b = eur(14, 500_000_000);
        let total = total([(&a, 2), (&b, 1)]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(total, eur(194, 480_000_000));
    }

    #[test]
    fn refuses_mixed_currencies() {
        let a = eur(1, 0);
        let b = Money {
            currency_code: "USD".into(),
            units: 1,
            nanos: 0,
        };
        assert_eq!(
            total([(&a, 1), (&b, 1)]).map_err(|e| e.code),
            Err(workmesh::Code::FailedPrecondition)
        );
    }
}
