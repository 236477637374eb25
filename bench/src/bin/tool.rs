//! `bench-tool`: helpers for scripts/bench.sh.
//!
//! - `gen`: signs load-test tokens with a PEM key and writes a static identity provider
//!   (discovery document + JWK Set) for `python3 -m http.server`, plus token files.
//! - `coldstart`: exec → first `200` on `GET /` (and on an authenticated request), repeated.
//! - `load`: a fixed number of keep-alive requests cycling through token files, or with one
//!   Authorization value, GET or POST of a body (for RSS and instruction counts).
//! - `dpop`: one DPoP-bound access token and many fresh ES256 proofs for it (the DPoP case).
//! - `sha`: SHA-256 of the first line of --file, --n times (run under callgrind, the cost of
//!   the token hash that the cache-hit path pays).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("gen") => generate(&Flags::new(&args[1..])),
        Some("coldstart") => {
            let split = args.iter().position(|a| a == "--").ok_or("coldstart: -- CMD missing")?;
            coldstart(&Flags::new(&args[1..split]), &args[split + 1..])
        }
        Some("load") => load(&Flags::new(&args[1..])),
        Some("dpop") => dpop(&Flags::new(&args[1..])),
        Some("sha") => sha(&Flags::new(&args[1..])),
        _ => Err("usage: bench-tool gen|coldstart|load|dpop|sha --flag value ...".into()),
    }
}

struct Flags(Vec<(String, String)>);

impl Flags {
    fn new(args: &[String]) -> Self {
        Self(
            args.chunks(2).filter_map(|c| Some((c[0].trim_start_matches('-').to_owned(), c.get(1)?.clone()))).collect(),
        )
    }
    fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
    fn req(&self, name: &str) -> Result<&str> {
        self.get(name).ok_or_else(|| format!("--{name} is required").into())
    }
    fn num(&self, name: &str, default: u64) -> Result<u64> {
        Ok(match self.get(name) {
            Some(v) => v.parse()?,
            None => default,
        })
    }
}

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

const KID: &str = "bench-rsa-a";

/// Writes, under --out: `dpop-token.txt`, one access token (signed with --key as by `gen`)
/// bound with `cnf.jkt` to the ES256 key --proof-key, and `dpop-proofs.txt` / `dpop-warmup.txt`,
/// --n / --warmup proofs for `GET --url` by that key, each with its own `jti`, `iat` now and
/// the token's `ath`, so every request (warm-up and measurement are separate wrk runs) can
/// carry a proof the handler has never seen. Signed on every core.
fn dpop(flags: &Flags) -> Result<()> {
    let key = EncodingKey::from_rsa_pem(&std::fs::read(flags.req("key")?)?)?;
    let proof_key = EncodingKey::from_ec_pem(&std::fs::read(flags.req("proof-key")?)?)?;
    let (issuer, audience, url) = (flags.req("issuer")?, flags.req("audience")?, flags.req("url")?);
    let out = PathBuf::from(flags.req("out")?);
    let n = flags.num("n", 100_000)? as usize;
    let warmup = flags.num("warmup", 0)? as usize;
    let lifetime = flags.num("lifetime", 7_200)? as i64;
    let sha256 = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes));

    let full = serde_json::to_value(Jwk::from_encoding_key(&proof_key, Algorithm::ES256)?)?;
    let jwk = json!({"kty": full["kty"], "crv": full["crv"], "x": full["x"], "y": full["y"]});
    // RFC 7638: required members in lexicographic order (serde_json's map is sorted).
    let jkt = sha256(jwk.to_string().as_bytes());

    let iat = now();
    let claims = json!({
        "iss": issuer, "sub": "bench-client@clients", "aud": audience, "iat": iat, "exp": iat + lifetime,
        "azp": "bench-client", "scope": "read:a", "gty": "client-credentials", "jti": "bench-dpop",
        "cnf": {"jkt": jkt},
    });
    let message = format!("{}.{}", b64(&json!({"alg": "RS256", "typ": "JWT", "kid": KID})), b64(&claims));
    let token = format!("{message}.{}", jsonwebtoken::crypto::sign(message.as_bytes(), &key, Algorithm::RS256)?);
    std::fs::write(out.join("dpop-token.txt"), format!("{token}\n"))?;

    let header = b64(&json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": jwk}));
    let ath = sha256(token.as_bytes());
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    for (file, count) in [("dpop-warmup.txt", warmup), ("dpop-proofs.txt", n)] {
        let chunks: Vec<String> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let (header, ath, proof_key) = (&header, &ath, &proof_key);
                    scope.spawn(move || {
                        let mut lines = String::new();
                        for i in (t..count).step_by(threads) {
                            let jti = format!("bench-{file}-{iat}-{i:08}");
                            let payload = json!({"jti": jti, "htm": "GET", "htu": url, "iat": iat, "ath": ath});
                            let message = format!("{header}.{}", b64(&payload));
                            let signature = jsonwebtoken::crypto::sign(message.as_bytes(), proof_key, Algorithm::ES256)
                                .expect("ES256 signing");
                            lines.push_str(&message);
                            lines.push('.');
                            lines.push_str(&signature);
                            lines.push('\n');
                        }
                        lines
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().expect("signer thread")).collect()
        });
        std::fs::write(out.join(file), chunks.concat())?;
    }
    Ok(())
}

/// Writes, under --out: `.well-known/openid-configuration`, `jwks.json`, `valid.txt` (one
/// token), `distinct.txt` (--distinct valid tokens, each unique), `badsig.txt` and
/// `randkid.txt` (--invalid tokens: known kid with a wrong signature; unknown random kid),
/// `envelope.json` (an invocation envelope carrying the valid token), `importer.txt` (a
/// valid token with the `create:orders` permission, for the upload case).
fn generate(flags: &Flags) -> Result<()> {
    let key = EncodingKey::from_rsa_pem(&std::fs::read(flags.req("key")?)?)?;
    let issuer = flags.req("issuer")?.to_owned();
    let audience = flags.req("audience")?.to_owned();
    let out = PathBuf::from(flags.req("out")?);
    let distinct = flags.num("distinct", 12_000)? as usize;
    let invalid = flags.num("invalid", 2_000)? as usize;
    let lifetime = flags.num("lifetime", 7_200)? as i64;

    std::fs::create_dir_all(out.join(".well-known"))?;
    let discovery = json!({"issuer": issuer, "jwks_uri": format!("{}/jwks.json", issuer.trim_end_matches('/'))});
    std::fs::write(out.join(".well-known/openid-configuration"), discovery.to_string())?;
    let mut jwk = serde_json::to_value(Jwk::from_encoding_key(&key, Algorithm::RS256)?)?;
    jwk["kid"] = json!(KID);
    jwk["use"] = json!("sig");
    std::fs::write(out.join("jwks.json"), json!({"keys": [jwk]}).to_string())?;

    let iat = now();
    let claims = |jti: &str| {
        json!({
            "iss": issuer, "sub": "bench-client@clients", "aud": audience, "iat": iat, "exp": iat + lifetime,
            "azp": "bench-client", "scope": "read:a", "gty": "client-credentials", "jti": jti,
        })
    };
    let header = json!({"alg": "RS256", "typ": "JWT", "kid": KID});
    let sign = |claims: &Value| -> Result<String> {
        let message = format!("{}.{}", b64(&header), b64(claims));
        let signature = jsonwebtoken::crypto::sign(message.as_bytes(), &key, Algorithm::RS256)?;
        Ok(format!("{message}.{signature}"))
    };

    let valid = sign(&claims("bench-repeated"))?;
    let signature = valid.rsplit('.').next().unwrap_or_default().to_owned();
    std::fs::write(out.join("valid.txt"), format!("{valid}\n"))?;
    // For examples/mcp's orders-import (permission create:orders, as Auth0 RBAC adds it).
    let mut importer = claims("bench-importer");
    importer["permissions"] = json!(["create:orders"]);
    std::fs::write(out.join("importer.txt"), format!("{}\n", sign(&importer)?))?;

    // Distinct tokens: RSA signing is the slow part, so use every core.
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let chunks: Vec<Vec<String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (sign, claims) = (&sign, &claims);
                scope.spawn(move || {
                    (t..distinct)
                        .step_by(threads)
                        .map(|i| sign(&claims(&format!("bench-{i:08}"))).map_err(|e| e.to_string()))
                        .collect::<std::result::Result<Vec<_>, _>>()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("signer thread").expect("signing")).collect()
    });
    let mut lines = String::new();
    for token in chunks.iter().flatten() {
        lines.push_str(token);
        lines.push('\n');
    }
    std::fs::write(out.join("distinct.txt"), lines)?;

    // Invalid tokens need no signing: a real signature over other bytes is a bad signature
    // that still costs a full RSA check.
    let (mut badsig, mut randkid) = (String::new(), String::new());
    for i in 0..invalid {
        let body = b64(&claims(&format!("bench-bad-{i:08}")));
        badsig.push_str(&format!("{}.{body}.{signature}\n", b64(&header)));
        let kid = format!("random-{:016x}", (i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let header = json!({"alg": "RS256", "typ": "JWT", "kid": kid});
        randkid.push_str(&format!("{}.{body}.{signature}\n", b64(&header)));
    }
    std::fs::write(out.join("badsig.txt"), badsig)?;
    std::fs::write(out.join("randkid.txt"), randkid)?;

    let envelope = json!({
        "Data": {"req": {
            "Url": "https://bench.azurewebsites.net/api/api-a?code=bench-function-key",
            "Method": "GET",
            "Query": {"code": "bench-function-key"},
            "Headers": {
                "Accept": ["*/*"],
                "Host": ["bench.azurewebsites.net"],
                "User-Agent": ["wrk"],
                "Authorization": [format!("Bearer {valid}")],
                "x-functions-key": ["bench-function-key"],
                "X-Forwarded-Proto": ["https"]
            },
            "Params": {},
            "Identities": [{"AuthenticationType": "WebJobsAuthLevel", "IsAuthenticated": true, "Claims": [
                {"Issuer": "LOCAL AUTHORITY",
                 "Type": "http://schemas.microsoft.com/2017/07/functions/claims/authlevel", "Value": "Function"}
            ]}]
        }},
        "Metadata": {
            "Query": {"code": "\"bench-function-key\""},
            "Headers": {"Accept": "\"*/*\"", "Host": "\"bench.azurewebsites.net\""},
            "sys": {"MethodName": "api-a", "UtcNow": "2026-01-01T00:00:00.0000000Z",
                    "RandGuid": "4d6e3d3e-8a5b-4bda-a0c6-3f9d1b9e6a10"}
        }
    });
    std::fs::write(out.join("envelope.json"), envelope.to_string())?;
    std::fs::write(out.join("expires"), format!("{}\n", iat + lifetime))?;
    println!("gen: {} distinct, {} invalid tokens in {}", distinct, invalid, out.display());
    Ok(())
}

/// One HTTP/1.1 request on a keep-alive connection; returns the status.
fn request(stream: &mut TcpStream, port: u16, path: &str, token: Option<&str>, close: bool) -> Result<u16> {
    let auth = token.map(|t| format!("Bearer {t}"));
    send(stream, port, path, auth.as_deref(), "", None, close)
}

/// One keep-alive request: GET, or POST of `body` as JSON; `authorization` verbatim;
/// `extra`: more header lines, each ending in CRLF.
fn send(
    stream: &mut TcpStream,
    port: u16,
    path: &str,
    authorization: Option<&str>,
    extra: &str,
    body: Option<&[u8]>,
    close: bool,
) -> Result<u16> {
    let auth = authorization.map(|a| format!("Authorization: {a}\r\n{extra}")).unwrap_or_else(|| extra.to_owned());
    let connection = if close { "Connection: close\r\n" } else { "" };
    // The whole request in one write, as an HTTP client library sends it. `write!` straight
    // to the socket would send each formatted piece as its own segment (TCP_NODELAY), and how
    // many of them the server finds at each wake-up depends on timing: that alone moved the
    // bare baseline's instructions per request by 15% between runs.
    let mut request = Vec::with_capacity(512 + body.map_or(0, <[u8]>::len));
    match body {
        None => write!(request, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{auth}{connection}\r\n")?,
        Some(body) => {
            write!(
                request,
                "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{auth}{connection}\
                 Content-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )?;
            request.extend_from_slice(body);
        }
    }
    stream.write_all(&request)?;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err("connection closed".into());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = std::str::from_utf8(&buf[..head_end])?;
    let status: u16 = head.split(' ').nth(1).ok_or("no status")?.parse()?;
    let length: usize = head
        .lines()
        .find_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case("content-length")))
        .map(|(_, v)| v.trim().parse())
        .transpose()?
        .unwrap_or(0);
    let mut body = buf.len() - head_end;
    while body < length {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        body += n;
    }
    Ok(status)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Starts CMD --runs times; prints median/min/p90 milliseconds from spawn to the first 200
/// on `GET /`, and with --token-file, to the first 200 on --path with that bearer token.
fn coldstart(flags: &Flags, cmd: &[String]) -> Result<()> {
    let port = flags.num("port", 8080)? as u16;
    let runs = flags.num("runs", 20)? as usize;
    let path = flags.get("path").unwrap_or("/api/api-a").to_owned();
    let token = match flags.get("token-file") {
        Some(file) => Some(std::fs::read_to_string(file)?.lines().next().unwrap_or_default().to_owned()),
        None => None,
    };
    let deadline = Duration::from_secs(10);
    let (mut ready, mut authed) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let t0 = Instant::now();
        let mut child = Command::new(&cmd[0])
            .args(&cmd[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let first_ok = |path: &str, token: Option<&str>| -> Result<f64> {
            loop {
                if t0.elapsed() > deadline {
                    return Err(format!("no 200 on {path} within {deadline:?}").into());
                }
                if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
                    s.set_nodelay(true)?;
                    if request(&mut s, port, path, token, true).ok() == Some(200) {
                        return Ok(t0.elapsed().as_secs_f64() * 1000.0);
                    }
                }
                std::thread::sleep(Duration::from_micros(100));
            }
        };
        let result = first_ok("/", None).and_then(|r| {
            ready.push(r);
            if let Some(t) = &token {
                authed.push(first_ok(&path, Some(t))?);
            }
            Ok(())
        });
        let _ = child.kill();
        let _ = child.wait();
        result?;
    }
    for (name, samples) in [("ready", &mut ready), ("authed", &mut authed)] {
        if samples.is_empty() {
            continue;
        }
        samples.sort_by(f64::total_cmp);
        println!(
            "{name} median_ms={:.2} min_ms={:.2} p90_ms={:.2} runs={}",
            percentile(samples, 0.5),
            samples[0],
            percentile(samples, 0.9),
            samples.len()
        );
    }
    Ok(())
}

fn read_lines(path: &Path) -> Result<Vec<String>> {
    Ok(std::fs::read_to_string(path)?.lines().filter(|l| !l.is_empty()).map(str::to_owned).collect())
}

/// Sends --n requests to --path over one keep-alive connection, cycling through the token
/// files in --mix (comma-separated; `none` = no Authorization header). Prints status counts.
fn load(flags: &Flags) -> Result<()> {
    let port = flags.num("port", 8080)? as u16;
    let n = flags.num("n", 10_000)? as usize;
    let path = flags.get("path").unwrap_or("/api/api-a");
    // --header: this Authorization value on every request (instead of --mix tokens).
    let header = flags.get("header");
    // --body: POST this file (an invocation envelope) on every request.
    let body = flags.get("body").map(std::fs::read).transpose()?;
    // --extra "Name: value|Name: value": more header lines on every request.
    let extra: String =
        flags.get("extra").unwrap_or("").split('|').filter(|l| !l.is_empty()).map(|l| format!("{l}\r\n")).collect();
    let mut sources: Vec<Vec<Option<String>>> = Vec::new();
    for item in flags.get("mix").unwrap_or("none").split(',') {
        sources.push(if item == "none" {
            vec![None]
        } else {
            read_lines(Path::new(item))?.into_iter().map(Some).collect()
        });
    }
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_nodelay(true)?;
    let mut counts = std::collections::BTreeMap::<u16, usize>::new();
    let started = Instant::now();
    for i in 0..n {
        let source = &sources[i % sources.len()];
        let token = source[(i / sources.len()) % source.len()].as_deref();
        let bearer = token.map(|t| format!("Bearer {t}"));
        let authorization = header.or(bearer.as_deref());
        *counts.entry(send(&mut stream, port, path, authorization, &extra, body.as_deref(), false)?).or_default() += 1;
    }
    let summary: Vec<String> = counts.iter().map(|(s, c)| format!("{s}:{c}")).collect();
    println!("load requests={n} seconds={:.2} statuses={}", started.elapsed().as_secs_f64(), summary.join(","));
    Ok(())
}

/// `sha --file F --n N`: SHA-256 of F's first line, N times, as the verified-token cache
/// hashes a token (aws-lc-rs, the handler's implementation).
fn sha(flags: &Flags) -> Result<()> {
    let token = read_lines(Path::new(flags.req("file")?))?.into_iter().next().ok_or("empty --file")?;
    let n = flags.num("n", 1000)?;
    let mut last = [0u8; 32];
    for _ in 0..n {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, std::hint::black_box(token.as_bytes()));
        last.copy_from_slice(digest.as_ref());
    }
    println!("sha n={n} last={:02x}{:02x}", last[0], last[1]);
    Ok(())
}
