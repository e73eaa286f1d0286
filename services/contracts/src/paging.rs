//! The shop's list-paging convention: `page_size` ≤ 0 means "the default",
//! and no page is larger than the method's maximum.

/// The page size to serve for a requested `page_size`.
pub fn page_size(requested: i32, default: u32, max: u32) -> u32 {
    match u32::try_from(requested) {
        Ok(0) | Err(_) => default,
        Ok(n) => n.min(max),
    }
}

#[cfg(test)]
mod tests {
    use super::page_size;

    #[test]
    fn defaults_and_caps() {
        assert_eq!(page_size(0, 20, 100), 20);
        assert_eq!(page_size(-5, 20, 100), 20);
        assert_eq!(page_size(7, 20, 100), 7);
        assert_eq!(page_size(1_000, 20, 100), 100);
    }
}
