//! The `"claims"` rule parser (`auth::rules::ClaimRules::parse`, RFC 6901 pointers included)
//! and evaluator (`satisfied_by`) on arbitrary rule documents and arbitrary claims.
//!
//! Input: the rules JSON, a NUL byte, then the claims JSON.
//! Checked: never panics; a parsed rule set is never empty and never satisfied by a token
//! without claims (a missing claim fails its rule); evaluation is deterministic; a rule on a
//! plain name `n` (no `/`, no `~`) and the same rule on the pointer `/n` agree on every claims
//! object; `Policy::parse` accepts exactly the rule documents `ClaimRules::parse` accepts.

#![no_main]

use azfn_auth::auth::policy::Policy;
use azfn_auth::auth::rules::ClaimRules;
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value, json};

fuzz_target!(|data: &[u8]| {
    let (rules_json, claims_json) = match data.iter().position(|b| *b == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &b"{}"[..]),
    };
    let Ok(doc) = serde_json::from_slice::<Value>(rules_json) else { return };
    let parsed = ClaimRules::parse(&doc);
    let in_policy = Policy::parse(json!({ "claims": doc }).to_string().as_bytes());
    // `"claims": null` is no rules, as `null` is for every optional auth.json field.
    assert!(
        doc.is_null() || parsed.is_ok() == in_policy.is_ok(),
        "Policy::parse and ClaimRules::parse disagree on {doc}"
    );
    let Ok(rules) = parsed else { return };
    assert!(!rules.is_empty(), "an accepted rule set requires something");
    assert!(!rules.satisfied_by(&Map::new()), "satisfied without any claim: {doc}");

    let claims = match serde_json::from_slice::<Value>(claims_json) {
        Ok(Value::Object(claims)) => claims,
        _ => return,
    };
    let verdict = rules.satisfied_by(&claims);
    assert_eq!(verdict, rules.satisfied_by(&claims), "not deterministic");

    // The same rules with plain names spelled as one-token pointers decide the same.
    let Value::Object(members) = &doc else { return };
    let plain = members.keys().all(|name| !name.is_empty() && !name.contains(['/', '~']));
    if plain {
        let as_pointers: Map<String, Value> = members.iter().map(|(n, r)| (format!("/{n}"), r.clone())).collect();
        let pointers = ClaimRules::parse(&Value::Object(as_pointers)).expect("pointer spelling of valid names parses");
        assert_eq!(pointers.satisfied_by(&claims), verdict, "pointer and name disagree on {doc}");
    }
});
