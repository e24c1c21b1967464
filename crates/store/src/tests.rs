use super::*;

#[test]
fn expect_matches_like_etcd() {
    assert!(Expect::Any.matches(None));
    assert!(Expect::Any.matches(Some(3)));
    assert!(Expect::Absent.matches(None));
    assert!(!Expect::Absent.matches(Some(1)));
    assert!(Expect::Version(0).matches(None));
    assert!(!Expect::Version(0).matches(Some(1)));
    assert!(Expect::Version(2).matches(Some(2)));
    assert!(!Expect::Version(2).matches(Some(3)));
    assert!(!Expect::Version(2).matches(None));
}

#[test]
fn validate_rejects_bad_keys_and_duplicates() {
    let empty = Txn::new().put("", "v", Expect::Any).validate();
    assert!(matches!(empty, Err(StoreError::InvalidKey { .. })));
    let nul = Txn::new().delete("a\0b", Expect::Any).validate();
    assert!(matches!(nul, Err(StoreError::InvalidKey { .. })));
    let dup = Txn::new().put("a", "1", Expect::Any).delete("a", Expect::Any).validate();
    assert!(matches!(dup, Err(StoreError::DuplicateKey { key }) if key == "a"));
    assert!(Txn::new().put("a", "1", Expect::Any).put("b", "2", Expect::Absent).validate().is_ok());
}
