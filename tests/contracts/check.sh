#!/usr/bin/env bash
# Contract checks for proto/: `buf lint` (STANDARD + COMMENTS + UNARY_RPC, see
# proto/buf.yaml), `buf breaking` against the contracts of the last commit,
# and self-tests proving both checks catch what they are meant to catch.
#
# Offline: buf comes from node_modules (npm `@bufbuild/buf`), and the
# baseline is a `git archive` of HEAD:proto, so no network or BSR is needed.
# Usage: tests/contracts/check.sh   (from anywhere in the repository)
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
buf="$repo/node_modules/.bin/buf"
if [[ ! -x "$buf" ]]; then
  echo "check.sh: $buf not found; run 'npm install' in $repo" >&2
  exit 2
fi

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
passed=0
failed=0

pass() { echo "ok   - $1"; passed=$((passed + 1)); }
fail() { echo "FAIL - $1"; failed=$((failed + 1)); }

# 1. Lint.
if (cd "$repo/proto" && "$buf" lint); then
  pass "buf lint proto/ (STANDARD, COMMENTS, UNARY_RPC)"
else
  fail "buf lint proto/"
fi

# 2. Breaking changes against the last commit's contracts.
baseline="$scratch/baseline"
mkdir -p "$baseline"
if git -C "$repo" cat-file -e HEAD:proto 2>/dev/null; then
  git -C "$repo" archive HEAD proto | tar -x -C "$baseline"
  if (cd "$repo/proto" && "$buf" breaking --against "$baseline/proto"); then
    pass "buf breaking proto/ against HEAD:proto"
  else
    fail "buf breaking proto/ against HEAD:proto"
  fi
else
  echo "skip - buf breaking: HEAD has no proto/ yet"
fi

# 3. Self-test: a renumbered field must be reported as breaking.
original="$scratch/original"
renumbered="$scratch/renumbered"
cp -r "$repo/proto" "$original"
cp -r "$repo/proto" "$renumbered"
target="$renumbered/shop/v1/catalog.proto"
sed -i 's/^  string sku = 1;$/  string sku = 9;/' "$target"
if cmp -s "$original/shop/v1/catalog.proto" "$target"; then
  fail "self-test: could not renumber a field in shop/v1/catalog.proto"
elif out="$(cd "$renumbered" && "$buf" breaking --error-format=json --against "$original" 2>&1)"; then
  fail "self-test: buf breaking accepted a renumbered field"
elif grep -q 'FIELD_SAME_NAME\|FIELD_NO_DELETE' <<<"$out"; then
  pass "self-test: buf breaking rejects a renumbered field (shop.v1 sku 1 -> 9)"
else
  fail "self-test: buf breaking failed, but not on the renumbered field: $out"
fi

# 4. Self-test: an uncommented rpc must fail lint (COMMENTS is enforced).
uncommented="$scratch/uncommented"
cp -r "$repo/proto" "$uncommented"
target="$uncommented/shop/v1/catalog.proto"
sed -i '/^  \/\/ Returns one product by SKU/d' "$target"
if cmp -s "$original/shop/v1/catalog.proto" "$target"; then
  fail "self-test: could not remove an rpc comment in shop/v1/catalog.proto"
elif out="$(cd "$uncommented" && "$buf" lint --error-format=json 2>&1)"; then
  fail "self-test: buf lint accepted an rpc without a comment"
elif grep -q 'COMMENT_RPC' <<<"$out"; then
  pass "self-test: buf lint rejects an rpc without a comment"
else
  fail "self-test: buf lint failed, but not on the missing comment: $out"
fi

echo "contracts: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
