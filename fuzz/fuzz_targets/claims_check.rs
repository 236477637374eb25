//! Registered-claims checks (`auth::token::check_claims`) on arbitrary JSON objects and
//! arbitrary clocks: numeric dates as integers, floats, huge and negative values.
//!
//! Input: 8 bytes of `now` (i64), 2 bytes of skew (0..=600 s), then the claims JSON.
//! Checked: never panics or overflows; an accepted payload has a numeric `exp` not yet
//! reached (with skew), and its returned audiences include a configured one.

#![no_main]

use azfn_auth::auth::token::check_claims;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Some((now, rest)) = data.split_first_chunk::<8>() else { return };
    let Some((skew, json)) = rest.split_first_chunk::<2>() else { return };
    // Half the inputs get a realistic clock, so the interesting comparisons are reachable.
    let raw = i64::from_le_bytes(*now);
    let now = if raw & 1 == 0 { 1_700_000_000 + (raw >> 1) % 1_000_000_000 } else { raw };
    let skew = i64::from(u16::from_le_bytes(*skew) % 601);
    let Ok(Value::Object(payload)) = serde_json::from_slice::<Value>(json) else { return };
    let audiences = ["https://api-a.example.com".to_owned(), "a".to_owned()];

    if let Ok((exp, token_audiences)) = check_claims(&payload, now, skew, &audiences) {
        assert!(payload.get("exp").is_some_and(Value::is_number), "accepted without a numeric exp");
        assert!(now < exp.saturating_add(skew), "accepted an expired token: now {now} exp {exp} skew {skew}");
        assert!(token_audiences.iter().any(|a| audiences.contains(a)), "accepted a foreign audience");
        for name in ["nbf", "iat"] {
            if let Some(at) = payload.get(name).and_then(Value::as_i64) {
                assert!(at <= now.saturating_add(skew), "accepted {name} in the future");
            }
        }
    }
});
