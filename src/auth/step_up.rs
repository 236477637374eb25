//! RFC 9470 step-up per function: `acrValues` (how the user logged in) and `maxAge` (how
//! long ago), read from `auth.json` and checked against a verified token's `acr` and
//! `auth_time`. A shortfall a new login cures is a step-up demand; a defective claim (wrong
//! JSON type, a login in the future) is an invalid token.

use std::sync::Arc;

use serde_json::Value;

use super::Claims;
use super::token::numeric_date;
use crate::error::{AuthError, Shortfall, StepUp, TokenRejection};

/// Largest `maxAge` accepted in `auth.json`: one year. Anything longer outlives every
/// provider's session lifetime, so it is almost surely a unit mistake (milliseconds); the
/// bound also keeps `maxAge + skew` far from overflow.
pub const MAX_AGE_LIMIT_SECS: u64 = 365 * 24 * 60 * 60;

/// What a function demands of the login behind a token. The default demands nothing.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StepUpPolicy {
    /// Acceptable `acr` values (exact, case-sensitive), space-separated as the challenge
    /// carries them, built once and shared with every challenge; empty means any or none.
    /// Values hold no spaces (checked at start-up), so splitting gives them back exactly.
    acr_values: Arc<str>,
    /// Greatest login age in seconds.
    max_age: Option<u64>,
}

impl StepUpPolicy {
    /// Validates the `acrValues` and `maxAge` fields of `auth.json`. Errors name the field.
    /// `maxAge` arrives as a raw JSON number so that `-1`, `1.5` and `1e3` are refused rather
    /// than coerced.
    pub fn new(acr_values: Option<Vec<String>>, max_age: Option<serde_json::Number>) -> Result<Self, String> {
        let acr_values = match acr_values {
            None => Vec::new(),
            Some(values) if values.is_empty() => {
                return Err("acrValues: an empty list would refuse every caller".into());
            }
            Some(values) => {
                // The values go into a quoted-string of the challenge: nothing may end it early.
                let fits =
                    |v: &String| !v.is_empty() && v.bytes().all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\');
                if !values.iter().all(fits) {
                    return Err(
                        "acrValues: values must be non-empty printable ASCII with no spaces, quotes or backslashes"
                            .into(),
                    );
                }
                values
            }
        };
        let max_age = match max_age {
            None => None,
            Some(n) => match n.as_u64() {
                Some(secs) if secs <= MAX_AGE_LIMIT_SECS => Some(secs),
                _ => return Err(format!("maxAge: must be a whole number of seconds from 0 to {MAX_AGE_LIMIT_SECS}")),
            },
        };
        Ok(Self { acr_values: Arc::from(acr_values.join(" ")), max_age })
    }

    /// True when the function demands nothing of the login.
    pub fn is_empty(&self) -> bool {
        self.acr_values.is_empty() && self.max_age.is_none()
    }

    /// Acceptable `acr` values (none when the function names none).
    pub fn acr_values(&self) -> impl Iterator<Item = &str> {
        self.acr_values.split(' ').filter(|v| !v.is_empty())
    }

    /// Greatest login age in seconds, when set.
    pub fn max_age(&self) -> Option<u64> {
        self.max_age
    }

    /// Checks `acr` and `auth_time` at `now` (Unix seconds) with `skew` seconds of leeway,
    /// applied as for `exp`: a login up to `maxAge + skew` old passes, and one more than
    /// `skew` in the future is refused. Only the claims this policy uses are read.
    pub fn check(&self, claims: &Claims, now: i64, skew: i64) -> Result<(), AuthError> {
        let demand = |shortfall| {
            Err(AuthError::InsufficientUserAuthentication(StepUp {
                shortfall,
                acr_values: self.acr_values.clone(),
                max_age: self.max_age,
            }))
        };
        let defective = |rejection| Err(AuthError::InvalidToken(rejection));
        if !self.acr_values.is_empty() {
            match claims.raw().get("acr") {
                None => return demand(Shortfall::MissingAcr),
                Some(Value::String(acr)) if self.acr_values().any(|v| v == acr) => {}
                Some(Value::String(_)) => return demand(Shortfall::AcrNotAccepted),
                Some(_) => return defective(TokenRejection::BadClaimType),
            }
        }
        if let Some(max_age) = self.max_age {
            let auth_time = match numeric_date(claims.raw().get("auth_time")) {
                Ok(Some(auth_time)) => auth_time,
                Ok(None) => return demand(Shortfall::MissingAuthTime),
                Err(rejection) => return defective(rejection),
            };
            if auth_time > now.saturating_add(skew) {
                return defective(TokenRejection::AuthenticatedInFuture);
            }
            // `max_age` is at most a year (checked at start-up), so the cast and sum are exact.
            if now.saturating_sub(auth_time) > (max_age as i64).saturating_add(skew) {
                return demand(Shortfall::AuthenticationTooOld);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Number, json};

    const NOW: i64 = 1_800_000_000;
    const SKEW: i64 = 30;

    fn claims(raw: Value) -> Claims {
        let Value::Object(map) = raw else { panic!("object expected") };
        Claims::from_verified("https://a/".into(), vec![], 0, None, map)
    }

    fn policy(acr: &[&str], max_age: Option<u64>) -> StepUpPolicy {
        let acr = (!acr.is_empty()).then(|| acr.iter().map(|s| (*s).to_owned()).collect());
        StepUpPolicy::new(acr, max_age.map(Number::from)).unwrap()
    }

    fn shortfall(policy: &StepUpPolicy, raw: Value) -> Option<Shortfall> {
        match policy.check(&claims(raw), NOW, SKEW) {
            Err(AuthError::InsufficientUserAuthentication(step_up)) => Some(step_up.shortfall),
            Ok(()) => None,
            Err(other) => panic!("not a step-up demand: {other:?}"),
        }
    }

    fn rejection(policy: &StepUpPolicy, raw: Value) -> AuthError {
        policy.check(&claims(raw), NOW, SKEW).unwrap_err()
    }

    #[test]
    fn no_demand_reads_no_claims() {
        let none = StepUpPolicy::default();
        assert!(none.is_empty());
        assert_eq!(none.check(&claims(json!({"acr": 1, "auth_time": "x"})), NOW, SKEW), Ok(()));
    }

    #[test]
    fn acr_must_be_one_of_the_values() {
        let p = policy(&["mfa", "hwk"], None);
        assert_eq!(shortfall(&p, json!({"acr": "hwk"})), None);
        assert_eq!(shortfall(&p, json!({"acr": "pwd"})), Some(Shortfall::AcrNotAccepted));
        assert_eq!(shortfall(&p, json!({"acr": "MFA"})), Some(Shortfall::AcrNotAccepted));
        assert_eq!(shortfall(&p, json!({})), Some(Shortfall::MissingAcr));
    }

    #[test]
    fn acr_of_the_wrong_type_is_an_invalid_token() {
        let p = policy(&["1"], None);
        for wrong in [json!(1), json!(["1"]), json!(null), json!(true), json!({"v": "1"})] {
            assert_eq!(rejection(&p, json!({"acr": wrong})), AuthError::InvalidToken(TokenRejection::BadClaimType));
        }
    }

    #[test]
    fn max_age_accepts_a_login_up_to_max_age_plus_skew() {
        let p = policy(&[], Some(300));
        assert_eq!(shortfall(&p, json!({"auth_time": NOW})), None);
        assert_eq!(shortfall(&p, json!({"auth_time": NOW - 300 - SKEW})), None);
        assert_eq!(shortfall(&p, json!({"auth_time": NOW - 301 - SKEW})), Some(Shortfall::AuthenticationTooOld));
        assert_eq!(shortfall(&p, json!({"auth_time": 0})), Some(Shortfall::AuthenticationTooOld));
        assert_eq!(shortfall(&p, json!({"auth_time": i64::MIN})), Some(Shortfall::AuthenticationTooOld));
        assert_eq!(shortfall(&p, json!({"auth_time": -1.0e300})), Some(Shortfall::AuthenticationTooOld));
        // A NumericDate may carry a fraction; it is truncated as for `exp`.
        assert_eq!(shortfall(&p, json!({"auth_time": (NOW - 10) as f64 + 0.5})), None);
    }

    #[test]
    fn max_age_requires_auth_time() {
        assert_eq!(shortfall(&policy(&[], Some(300)), json!({})), Some(Shortfall::MissingAuthTime));
    }

    #[test]
    fn auth_time_in_the_future_beyond_skew_is_an_invalid_token() {
        let p = policy(&[], Some(300));
        assert_eq!(shortfall(&p, json!({"auth_time": NOW + SKEW})), None);
        for future in [json!(NOW + SKEW + 1), json!(i64::MAX), json!(u64::MAX), json!(1.0e300)] {
            assert_eq!(
                rejection(&p, json!({"auth_time": future})),
                AuthError::InvalidToken(TokenRejection::AuthenticatedInFuture)
            );
        }
    }

    #[test]
    fn auth_time_of_the_wrong_type_is_an_invalid_token() {
        let p = policy(&[], Some(300));
        for wrong in [json!(NOW.to_string()), json!(null), json!([NOW]), json!(true)] {
            assert_eq!(
                rejection(&p, json!({"auth_time": wrong})),
                AuthError::InvalidToken(TokenRejection::BadClaimType)
            );
        }
    }

    #[test]
    fn max_age_zero_allows_only_the_skew() {
        let p = policy(&[], Some(0));
        assert_eq!(shortfall(&p, json!({"auth_time": NOW - SKEW})), None);
        assert_eq!(shortfall(&p, json!({"auth_time": NOW - SKEW - 1})), Some(Shortfall::AuthenticationTooOld));
    }

    #[test]
    fn a_demand_carries_every_requirement_whichever_failed() {
        let p = policy(&["mfa", "hwk"], Some(60));
        let Err(AuthError::InsufficientUserAuthentication(step_up)) =
            p.check(&claims(json!({"acr": "mfa"})), NOW, SKEW)
        else {
            panic!("expected a step-up demand");
        };
        assert_eq!(step_up.shortfall, Shortfall::MissingAuthTime);
        assert_eq!(&*step_up.acr_values, "mfa hwk");
        assert_eq!(step_up.max_age, Some(60));
        assert_eq!(step_up.attributes(), r#", acr_values="mfa hwk", max_age="60""#);
        assert_eq!(shortfall(&p, json!({"acr": "pwd", "auth_time": NOW})), Some(Shortfall::AcrNotAccepted));
        assert_eq!(shortfall(&p, json!({"acr": "hwk", "auth_time": NOW})), None);
    }

    /// Every combination of extreme clocks, login times, ages and skews: no overflow (tests
    /// run with overflow checks), and whatever passes really is within the bounds.
    #[test]
    fn extreme_clocks_never_overflow_and_acceptance_means_within_bounds() {
        let nows = [i64::MIN, -1, 0, NOW, i64::MAX - 1, i64::MAX];
        for now in nows {
            let mut times: Vec<Value> = nows.iter().map(|t| json!(t)).collect();
            times.extend([json!(u64::MAX), json!(-1.0e300), json!(1.0e300), json!(now.saturating_sub(1))]);
            for max_age in [0, 1, 300, MAX_AGE_LIMIT_SECS] {
                for skew in [0, 30, 300] {
                    let p = policy(&[], Some(max_age));
                    for auth_time in &times {
                        let raw = json!({ "auth_time": auth_time });
                        if p.check(&claims(raw.clone()), now, skew).is_ok() {
                            let at = claims(raw).auth_time().unwrap();
                            assert!(at <= now.saturating_add(skew), "future login passed: {at} at {now}");
                            assert!(
                                i128::from(now) - i128::from(at) <= i128::from(max_age) + i128::from(skew),
                                "old login passed: {at} at {now}, maxAge {max_age}, skew {skew}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn start_up_validation_names_the_field() {
        let acr = |values: &[&str]| StepUpPolicy::new(Some(values.iter().map(|s| (*s).to_owned()).collect()), None);
        for bad in [&[][..], &[""], &["a b"], &["a\"b"], &["a\\b"], &["a\tb"]] {
            assert!(acr(bad).unwrap_err().starts_with("acrValues:"), "{bad:?}");
        }
        let max_age = |n: Value| {
            let Value::Number(n) = n else { panic!("number expected") };
            StepUpPolicy::new(None, Some(n))
        };
        for bad in [json!(-1), json!(1.5), json!(1e3), json!(MAX_AGE_LIMIT_SECS + 1), json!(u64::MAX)] {
            assert!(max_age(bad.clone()).unwrap_err().starts_with("maxAge:"), "{bad}");
        }
        assert_eq!(max_age(json!(0)).unwrap().max_age(), Some(0));
        assert_eq!(max_age(json!(MAX_AGE_LIMIT_SECS)).unwrap().max_age(), Some(MAX_AGE_LIMIT_SECS));
        assert_eq!(
            acr(&["http://schemas.openid.net/pape/policies/2007/06/multi-factor"]).unwrap().acr_values().count(),
            1
        );
    }
}
