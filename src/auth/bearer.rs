//! Reads the bearer token from the `Authorization` header (RFC 6750 §2.1) and nowhere else:
//! never from the query string or the body. After this point the token is opaque: it is
//! never logged, put in an error or in a span.

use http::{HeaderMap, header};

use crate::error::{AuthError, RequestProblem, TokenRejection};

/// The scheme of an `Authorization` header this handler reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `Bearer` (RFC 6750).
    Bearer,
    /// `DPoP` (RFC 9449 §7.1): the token must come with a proof.
    Dpop,
}

/// The token from the single `Authorization: Bearer <token>` header.
///
/// - no header, or another scheme (including `DPoP`): [`AuthError::MissingToken`] (a bare challenge);
/// - several headers (or several joined into one line by the host), an empty token,
///   several tokens or characters outside `b64token`: [`AuthError::InvalidRequest`];
/// - a token longer than `max_len`: [`TokenRejection::Oversized`], before any parsing.
pub fn bearer_token(headers: &HeaderMap, max_len: usize) -> Result<&str, AuthError> {
    match credentials(headers, max_len)? {
        (Scheme::Bearer, token) => Ok(token),
        (Scheme::Dpop, _) => Err(AuthError::MissingToken),
    }
}

/// The scheme and token from the single `Authorization: Bearer <token>` or
/// `Authorization: DPoP <token>` header, with the rules of [`bearer_token`] for both
/// (RFC 9449 §7.1 uses the same `token68` syntax).
pub fn credentials(headers: &HeaderMap, max_len: usize) -> Result<(Scheme, &str), AuthError> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else { return Err(AuthError::MissingToken) };
    if values.next().is_some() {
        return Err(AuthError::InvalidRequest(RequestProblem::SeveralHeaders));
    }
    let value = value.as_bytes().trim_ascii();

    let scheme_end = value.iter().position(|b| *b == b' ').unwrap_or(value.len());
    let (scheme, rest) = value.split_at(scheme_end);
    let scheme = if scheme.eq_ignore_ascii_case(b"bearer") {
        Scheme::Bearer
    } else if scheme.eq_ignore_ascii_case(b"dpop") {
        Scheme::Dpop
    } else {
        // The host joins repeated headers with ", ": "Basic x, Bearer y" is two headers.
        if contains_scheme_after_comma(value) {
            return Err(AuthError::InvalidRequest(RequestProblem::SeveralHeaders));
        }
        return Err(AuthError::MissingToken);
    };
    let token = rest.trim_ascii_start();
    if token.is_empty() {
        return Err(AuthError::InvalidRequest(RequestProblem::EmptyToken));
    }
    if token.len() > max_len {
        return Err(AuthError::InvalidToken(TokenRejection::Oversized));
    }
    if token.contains(&b' ') || token.contains(&b'\t') {
        return Err(if token.contains(&b',') {
            AuthError::InvalidRequest(RequestProblem::SeveralHeaders)
        } else {
            AuthError::InvalidRequest(RequestProblem::SeveralTokens)
        });
    }
    if !is_b64token(token) {
        return Err(AuthError::InvalidRequest(RequestProblem::InvalidCharacters));
    }
    // b64token is ASCII, so this never fails.
    let token = std::str::from_utf8(token).map_err(|_| AuthError::InvalidRequest(RequestProblem::InvalidCharacters))?;
    Ok((scheme, token))
}

/// `b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`
fn is_b64token(token: &[u8]) -> bool {
    let body_len = token.len() - token.iter().rev().take_while(|b| **b == b'=').count();
    body_len > 0
        && token[..body_len].iter().fold(true, |ok, &b| {
            ok & (b.is_ascii_lowercase()
                | b.is_ascii_uppercase()
                | b.is_ascii_digit()
                | (b == b'-')
                | (b == b'.')
                | (b == b'_')
                | (b == b'~')
                | (b == b'+')
                | (b == b'/'))
        })
}

fn contains_scheme_after_comma(value: &[u8]) -> bool {
    value.split(|b| *b == b',').skip(1).any(|part| {
        let part = part.trim_ascii_start();
        [b"bearer".as_slice(), b"dpop"].iter().any(|s| part.len() >= s.len() && part[..s.len()].eq_ignore_ascii_case(s))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn parse(values: &[&str]) -> Result<String, AuthError> {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append(header::AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        }
        bearer_token(&headers, 64).map(str::to_owned)
    }

    const EMPTY: AuthError = AuthError::InvalidRequest(RequestProblem::EmptyToken);
    const SEVERAL_TOKENS: AuthError = AuthError::InvalidRequest(RequestProblem::SeveralTokens);
    const SEVERAL_HEADERS: AuthError = AuthError::InvalidRequest(RequestProblem::SeveralHeaders);

    #[test]
    fn takes_the_token_after_a_case_insensitive_bearer_scheme() {
        assert_eq!(parse(&["Bearer abc.def.ghi"]).unwrap(), "abc.def.ghi");
        assert_eq!(parse(&["bearer abc"]).unwrap(), "abc");
        assert_eq!(parse(&["BEARER  a-b_c~d+e/f=="]).unwrap(), "a-b_c~d+e/f==");
    }

    #[test]
    fn no_header_or_another_scheme_is_a_missing_token() {
        assert_eq!(parse(&[]), Err(AuthError::MissingToken));
        assert_eq!(parse(&["Basic dXNlcjpwYXNz"]), Err(AuthError::MissingToken));
        assert_eq!(parse(&["Bearerabc"]), Err(AuthError::MissingToken));
        assert_eq!(parse(&[""]), Err(AuthError::MissingToken));
    }

    #[test]
    fn empty_token_is_invalid_request() {
        assert_eq!(parse(&["Bearer"]), Err(EMPTY));
        assert_eq!(parse(&["Bearer    "]), Err(EMPTY));
    }

    #[test]
    fn several_tokens_or_headers_are_invalid_request() {
        assert_eq!(parse(&["Bearer a b"]), Err(SEVERAL_TOKENS));
        assert_eq!(parse(&["Bearer a", "Bearer b"]), Err(SEVERAL_HEADERS));
        assert_eq!(parse(&["Bearer a, Bearer b"]), Err(SEVERAL_HEADERS));
        assert_eq!(parse(&["Basic x, Bearer b"]), Err(SEVERAL_HEADERS));
    }

    #[test]
    fn characters_outside_b64token_are_invalid_request() {
        for token in ["Bearer a$b", "Bearer ===", "Bearer a=b", "Bearer \"a\""] {
            assert_eq!(parse(&[token]), Err(AuthError::InvalidRequest(RequestProblem::InvalidCharacters)), "{token}");
        }
    }

    #[test]
    fn dpop_scheme_is_read_with_the_same_rules() {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("DPoP abc.def"));
        assert_eq!(credentials(&headers, 64), Ok((Scheme::Dpop, "abc.def")));
        assert_eq!(bearer_token(&headers, 64), Err(AuthError::MissingToken));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("dpop a b"));
        assert_eq!(credentials(&headers, 64), Err(SEVERAL_TOKENS));
        assert_eq!(parse(&["Basic x, DPoP y"]), Err(SEVERAL_HEADERS));
    }

    #[test]
    fn oversized_token_is_rejected_before_parsing() {
        let long = format!("Bearer {}", "a".repeat(65));
        assert_eq!(parse(&[&long]), Err(AuthError::InvalidToken(TokenRejection::Oversized)));
        let fits = format!("Bearer {}", "a".repeat(64));
        assert!(parse(&[&fits]).is_ok());
    }
}
