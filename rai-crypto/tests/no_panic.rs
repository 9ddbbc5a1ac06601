//! Property tests: decryption never panics, whatever the value, and always round-trips what encryption made.

use proptest::prelude::*;
use rai_crypto::{AppSecret, decrypt, encrypt, legacy};

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn decrypt_never_panics(
        body in "[A-Za-z0-9_=+/-]{0,200}",
        prefix in prop::sample::select(vec!["enc:v1:", "enc:v2:", "==AES32==", "enc:", ""]),
        raw in prop::collection::vec(any::<u8>(), 0..300),
        secret in ".{0,40}",
    ) {
        let s = AppSecret::new(secret);
        let _ = decrypt(&s, &format!("{prefix}{body}"));
        let mut bytes = b"==AES32==".to_vec();
        bytes.extend_from_slice(&raw);
        let _ = legacy::decrypt_legacy_bytes(&s, &bytes);
    }

    #[test]
    fn round_trip(plain in ".{0,200}", secret in ".{1,40}") {
        let s = AppSecret::new(secret);
        let v = encrypt(&s, &plain).unwrap();
        prop_assert_eq!(decrypt(&s, &v).unwrap(), plain);
    }
}
