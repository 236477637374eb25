//! A validating JSON reader made for the invocation envelope: one pass, no tree, strings
//! borrowed from the text unless they hold escapes, and values the edge does not read
//! skipped (still checked to be JSON) without building anything.
//!
//! serde_json's own `Deserializer` did this job before; most of its cost here was spent
//! skipping `Metadata` and `Identities` string by string (about 200 instructions each, the
//! host's double-encoded `"\"*/*\""` values breaking every fast path) and in its
//! byte-at-a-time structure. This reader finds where plain string text ends eight bytes at
//! a time ([`special`]), and walks skipped containers in a loop over a bit stack instead
//! of recursion. Escaped strings, the rare case, are still decoded by
//! serde_json, so escape and surrogate rules are exactly its own.
//!
//! What is JSON is RFC 8259: no trailing commas, no comments, no control characters in
//! strings, numbers by the grammar. Skipped values may nest to any depth (as with
//! serde_json's `IgnoredAny`); containers read member by member at most [`MAX_DEPTH`].

use std::borrow::Cow;

/// Deepest nesting of containers read member by member ([`Reader::object`],
/// [`Reader::array`]); serde_json's own limit.
pub(super) const MAX_DEPTH: usize = 128;

/// The text is not JSON (or its members nest deeper than [`MAX_DEPTH`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct NotJson;

/// What this module's readers return.
pub(super) type Scan<T> = Result<T, NotJson>;

/// The JSON type of the value at the reader's position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    String,
    Array,
    Object,
    /// A number, `true`, `false` or `null` (or not a value at all: reading it says so).
    Scalar,
}

/// A position in a JSON text, with the nesting depth of the containers open around it.
pub(super) struct Reader<'a> {
    text: &'a str,
    pos: usize,
    depth: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `text`.
    pub(super) fn new(text: &'a str) -> Self {
        Self { text, pos: 0, depth: 0 }
    }

    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes().get(self.pos) {
            self.pos += 1;
        }
    }

    /// The next byte after whitespace, not consumed. The host writes compact JSON, so the
    /// byte at hand is checked first.
    fn next_byte(&mut self) -> Scan<u8> {
        match self.bytes().get(self.pos) {
            Some(&byte) if byte > b' ' => Ok(byte),
            _ => {
                self.skip_whitespace();
                self.bytes().get(self.pos).copied().ok_or(NotJson)
            }
        }
    }

    /// Consumes `byte` (after whitespace), or fails.
    fn expect(&mut self, byte: u8) -> Scan<()> {
        if self.next_byte()? != byte {
            return Err(NotJson);
        }
        self.pos += 1;
        Ok(())
    }

    /// The type of the next value, not consumed.
    pub(super) fn peek(&mut self) -> Scan<Kind> {
        Ok(match self.next_byte()? {
            b'"' => Kind::String,
            b'[' => Kind::Array,
            b'{' => Kind::Object,
            _ => Kind::Scalar,
        })
    }

    /// Only whitespace is left.
    pub(super) fn end(&mut self) -> Scan<()> {
        self.skip_whitespace();
        if self.pos == self.text.len() { Ok(()) } else { Err(NotJson) }
    }

    /// Reads a string: borrowed from the text when it has no escapes. Inlined (as
    /// [`Reader::key`]): called for every key and string, a call costs more than most.
    #[inline(always)]
    pub(super) fn string(&mut self) -> Scan<Cow<'a, str>> {
        self.expect(b'"')?;
        self.string_after_quote()
    }

    /// A string if the next value is one (`None`, the value consumed, for any other type).
    pub(super) fn maybe_string(&mut self) -> Scan<Option<Cow<'a, str>>> {
        if self.next_byte()? == b'"' {
            self.pos += 1;
            self.string_after_quote().map(Some)
        } else {
            self.skip().map(|()| None)
        }
    }

    /// The rest of a string whose opening quote was just consumed.
    #[inline(always)]
    fn string_after_quote(&mut self) -> Scan<Cow<'a, str>> {
        let open = self.pos - 1;
        let escaped = self.string_rest()?;
        let text = self.text;
        if !escaped {
            return Ok(Cow::Borrowed(&text[open + 1..self.pos - 1]));
        }
        serde_json::from_str::<String>(&text[open..self.pos]).map(Cow::Owned).map_err(|_| NotJson)
    }

    /// Consumes the rest of a string whose opening quote was just read, up to and with its
    /// closing quote; says whether it held escapes. Escapes are checked for their form
    /// here; what a `\u` escape means is serde_json's to decide ([`Reader::string`]) or
    /// nobody's (skipped values).
    // Inlined into its three callers: a call's register saves cost more than most strings.
    #[inline(always)]
    fn string_rest(&mut self) -> Scan<bool> {
        let bytes = self.bytes();
        let mut escaped = false;
        loop {
            let at = special(bytes, self.pos).ok_or(NotJson)?;
            self.pos = at + 1;
            match bytes[at] {
                b'"' => return Ok(escaped),
                b'\\' => escaped = true,
                _ => return Err(NotJson), // a control character
            }
            match bytes.get(self.pos) {
                Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => self.pos += 1,
                Some(b'u') => {
                    let hex = bytes.get(self.pos + 1..self.pos + 5).ok_or(NotJson)?;
                    if !hex.iter().all(u8::is_ascii_hexdigit) {
                        return Err(NotJson);
                    }
                    self.pos += 5;
                }
                _ => return Err(NotJson),
            }
        }
    }

    /// The text of the next value, without the whitespace around it.
    pub(super) fn raw(&mut self) -> Scan<&'a str> {
        self.skip_whitespace();
        let start = self.pos;
        self.skip()?;
        Ok(&self.text[start..self.pos])
    }

    /// Reads an object member by member: `member` gets each key and must consume exactly
    /// one value (by a reader method).
    pub(super) fn object(&mut self, mut member: impl FnMut(&mut Self, Cow<'a, str>) -> Scan<()>) -> Scan<()> {
        self.container(b'{', b'}', |r| {
            let key = r.string()?;
            r.expect(b':')?;
            member(r, key)
        })
    }

    /// Reads an array element by element: `element` must consume exactly one value.
    pub(super) fn array(&mut self, element: impl FnMut(&mut Self) -> Scan<()>) -> Scan<()> {
        self.container(b'[', b']', element)
    }

    /// `open`, then items read by `item` separated by commas, then `close`.
    fn container(&mut self, open: u8, close: u8, mut item: impl FnMut(&mut Self) -> Scan<()>) -> Scan<()> {
        self.expect(open)?;
        self.enter()?;
        if self.next_byte()? == close {
            self.pos += 1;
        } else {
            loop {
                item(self)?;
                match self.next_byte()? {
                    b',' => self.pos += 1,
                    byte if byte == close => {
                        self.pos += 1;
                        break;
                    }
                    _ => return Err(NotJson),
                }
            }
        }
        self.depth -= 1;
        Ok(())
    }

    fn enter(&mut self) -> Scan<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH { Err(NotJson) } else { Ok(()) }
    }

    /// Consumes one value of any type, checking that it is JSON. Containers are walked in
    /// a loop over a bit stack (is the container `n` levels down an object?), so nesting
    /// costs no call stack and has no limit, as with serde_json's `IgnoredAny`: `Metadata`
    /// mirrors the client's JSON body, however deep it is.
    pub(super) fn skip(&mut self) -> Scan<()> {
        let mut open = Levels::default();
        loop {
            // A value is expected here.
            match self.next_byte()? {
                b'"' => {
                    self.pos += 1;
                    self.string_rest()?;
                }
                start @ (b'{' | b'[') => {
                    self.pos += 1;
                    let close = if start == b'{' { b'}' } else { b']' };
                    if self.next_byte()? == close {
                        self.pos += 1;
                    } else {
                        open.push(start == b'{');
                        if start == b'{' {
                            self.key()?;
                        }
                        continue;
                    }
                }
                b't' => self.literal(b"true")?,
                b'f' => self.literal(b"false")?,
                b'n' => self.literal(b"null")?,
                b'-' | b'0'..=b'9' => self.number()?,
                _ => return Err(NotJson),
            }
            // A value ended: close what it ended, up to the next value expected.
            loop {
                let Some(in_object) = open.top() else { return Ok(()) };
                match (self.next_byte()?, in_object) {
                    (b',', true) => {
                        self.pos += 1;
                        self.key()?;
                        break;
                    }
                    (b',', false) => {
                        self.pos += 1;
                        break;
                    }
                    (b'}', true) | (b']', false) => {
                        self.pos += 1;
                        open.pop();
                    }
                    _ => return Err(NotJson),
                }
            }
        }
    }

    /// An object key and its colon, skipped.
    #[inline(always)]
    fn key(&mut self) -> Scan<()> {
        self.expect(b'"')?;
        self.string_rest()?;
        self.expect(b':')
    }

    fn literal(&mut self, word: &[u8]) -> Scan<()> {
        if !self.bytes()[self.pos..].starts_with(word) {
            return Err(NotJson);
        }
        self.pos += word.len();
        Ok(())
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`
    fn number(&mut self) -> Scan<()> {
        let bytes = self.bytes();
        let digits = |from: usize| bytes[from..].iter().take_while(|b| b.is_ascii_digit()).count();
        let mut at = self.pos;
        if bytes[at] == b'-' {
            at += 1;
        }
        match bytes.get(at) {
            Some(b'0') => at += 1,
            Some(b'1'..=b'9') => at += digits(at),
            _ => return Err(NotJson),
        }
        if bytes.get(at) == Some(&b'.') {
            let n = digits(at + 1);
            if n == 0 {
                return Err(NotJson);
            }
            at += 1 + n;
        }
        if let Some(b'e' | b'E') = bytes.get(at) {
            at += 1;
            if let Some(b'+' | b'-') = bytes.get(at) {
                at += 1;
            }
            let n = digits(at);
            if n == 0 {
                return Err(NotJson);
            }
            at += n;
        }
        self.pos = at;
        Ok(())
    }
}

/// The containers [`Reader::skip`] is inside, innermost last, one bit each (object or
/// array): the first 64 inline, deeper ones in a vector allocated only then.
#[derive(Default)]
struct Levels {
    depth: usize,
    inline: u64,
    deeper: Vec<bool>,
}

impl Levels {
    const INLINE: usize = u64::BITS as usize;

    fn push(&mut self, object: bool) {
        if self.depth < Self::INLINE {
            let bit = 1u64 << self.depth;
            self.inline = if object { self.inline | bit } else { self.inline & !bit };
        } else {
            self.deeper.push(object);
        }
        self.depth += 1;
    }

    fn pop(&mut self) {
        self.depth -= 1;
        if self.depth >= Self::INLINE {
            self.deeper.pop();
        }
    }

    /// Whether the innermost container is an object; `None` outside any.
    fn top(&self) -> Option<bool> {
        let level = self.depth.checked_sub(1)?;
        Some(if level < Self::INLINE { self.inline >> level & 1 == 1 } else { self.deeper[level - Self::INLINE] })
    }
}

/// The index of the first `"`, `\\` or control character (U+0000 to U+001F) in `bytes`
/// from `from` on: the bytes that end a run of plain string text. Most strings end within
/// their first 32 bytes, read here a word at a time ([`special_in_words`]); longer ones (a
/// bearer token, a log line) go on in [`special_after`].
#[inline(always)]
pub(super) fn special(bytes: &[u8], from: usize) -> Option<usize> {
    special_in_words(bytes, from, 4).unwrap_or_else(|at| special_after(bytes, at))
}

/// Up to `words` eight-byte words from `at` (serde_json's own test, after Mycroft): per
/// byte, `x - 0x20` borrows into the top bit only for `x < 0x20`, and `(x ^ c) - 1` only
/// where `x == c`; the lowest flagged byte is always a true one. Fewer than eight bytes
/// left are read one at a time. `Err` with the next position when all `words` were plain.
#[inline(always)]
fn special_in_words(bytes: &[u8], mut at: usize, words: usize) -> Result<Option<usize>, usize> {
    const ONES: u64 = u64::MAX / 255;
    const TOP: u64 = ONES << 7;
    for _ in 0..words {
        let Some(chunk) = bytes.get(at..at + 8) else {
            return Ok(bytes.get(at..).and_then(|tail| tail.iter().position(|&b| is_special(b))).map(|i| at + i));
        };
        let mut word = [0; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word);
        let quote = x ^ (ONES * u64::from(b'"'));
        let backslash = x ^ (ONES * u64::from(b'\\'));
        let found = ((x.wrapping_sub(ONES * 0x20) & !x)
            | (quote.wrapping_sub(ONES) & !quote)
            | (backslash.wrapping_sub(ONES) & !backslash))
            & TOP;
        if found != 0 {
            return Ok(Some(at + found.trailing_zeros() as usize / 8));
        }
        at += 8;
    }
    Err(at)
}

/// [`special`] past the first 32 bytes: 32 bytes at a time through a branch-free test the
/// compiler turns into SIMD compares (SSE2 on x86_64: about 30 instructions per block,
/// against 60 for four words), then the block that holds the end word by word. Out of
/// line, so the short case stays small where it is inlined.
#[inline(never)]
fn special_after(bytes: &[u8], mut at: usize) -> Option<usize> {
    while let Some(block) = bytes.get(at..at + 32) {
        // Flags first, then one test: an early exit per byte would keep it scalar.
        let mut flags = [false; 32];
        for (flag, &b) in flags.iter_mut().zip(block) {
            *flag = is_special(b);
        }
        if flags.contains(&true) {
            break;
        }
        at += 32;
    }
    loop {
        // Within four words: the block holds a special byte, or fewer than 32 bytes are left.
        match special_in_words(bytes, at, 4) {
            Ok(found) => return found,
            Err(next) => at = next,
        }
    }
}

/// Branch-free (`|`, not `||`), so that the block search vectorises.
#[inline(always)]
fn is_special(b: u8) -> bool {
    (b == b'"') | (b == b'\\') | (b < 0x20)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn skips(text: &str) -> bool {
        let mut reader = Reader::new(text);
        reader.skip().and_then(|()| reader.end()).is_ok()
    }

    #[test]
    fn skipping_accepts_exactly_what_serde_json_accepts() {
        let cases = [
            r#"{}"#,
            r#"[]"#,
            r#" {"a": [1, -2.5e+3, 0, true, false, null, "x\"y\\z\u00e9"], "b": {"c": {}}} "#,
            r#""\ud83d\ude00""#,
            "[\"\\ud800\", \"\\udc00x\", \"\\u007f\u{7f}\"]",
            r#"[[[[]]],{"":[{}]}]"#,
            "0",
            "-0.0e0",
            r#"{"a":1,}"#,
            r#"[1,]"#,
            r#"[1 2]"#,
            r#"{"a" 1}"#,
            r#"{"a":1 "b":2}"#,
            r#"{1:2}"#,
            r#"[01]"#,
            r#"[1.]"#,
            r#"[.5]"#,
            r#"[1e]"#,
            r#"[-]"#,
            r#"[+1]"#,
            r#"[tru]"#,
            r#"[nul]"#,
            r#"["a"#,
            r#"["\x"]"#,
            r#"["\u12g4"]"#,
            "[\"tab\there\"]",
            "[\"nl\nhere\"]",
            r#"{"a":[}"#,
            r#"{"a":{]}"#,
            r#"[]]"#,
            r#"{}}"#,
            r#"[] x"#,
            "",
            "   ",
            "/* c */ {}",
        ];
        for text in cases {
            let serde = serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok();
            assert_eq!(skips(text), serde, "{text:?}");
        }
    }

    #[test]
    fn the_first_quote_backslash_or_control_character_is_found_at_any_offset() {
        // Past 80 bytes, so every offset is reached by the word, block and tail paths.
        for len in 0..90 {
            for at in 0..len {
                for byte in [b'"', b'\\', 0x00, 0x1f, b'\n'] {
                    let mut text = vec![b'a'; len];
                    text[at] = byte;
                    // Bytes that look close to the flagged ones must not be taken for them.
                    if at + 1 < len {
                        text[at + 1] = 0x80 | byte;
                    }
                    if at > 0 {
                        text[at - 1] = [b'!', b'#', b'[', b']', b' ', 0x7f, 0xff][at % 7];
                    }
                    assert_eq!(special(&text, 0), Some(at), "{text:?}");
                    assert_eq!(
                        special(&text, at + 1),
                        text[at + 1..].iter().position(|&b| b == b'"' || b == b'\\' || b < 0x20).map(|i| at + 1 + i)
                    );
                }
            }
            assert_eq!(special(&vec![b' '; len], 0), None);
        }
    }

    #[test]
    fn special_agrees_with_a_byte_at_a_time_search_from_every_start() {
        let naive = |bytes: &[u8], from: usize| {
            bytes.get(from..)?.iter().position(|&b| b == b'"' || b == b'\\' || b < 0x20).map(|i| from + i)
        };
        // Plain runs of every length up to 100, each ended by one of the special bytes,
        // with bytes next to them (0x20, 0x7f, 0x80 | b, UTF-8) that must not be taken.
        let mut text = Vec::new();
        for (run, end) in (0..100).zip([b'"', b'\\', 0x00, 0x1f, b'\t'].into_iter().cycle()) {
            text.extend((0..run).map(|i| [b'a', b' ', 0x7f, 0xa2, 0xdf, b'!', b'#', b']'][i % 8]));
            text.push(end);
            text.push(0x80 | end);
        }
        for from in 0..=text.len() + 1 {
            assert_eq!(special(&text, from), naive(&text, from), "from {from}");
        }
    }

    #[test]
    fn skipped_nesting_has_no_limit_and_no_recursion() {
        let n = 1_000_000;
        let mixed = format!("{}1{}", r#"[{"a":"#.repeat(n), "}]".repeat(n));
        assert!(skips(&mixed));
        // Unbalanced or mismatched, however deep, ends in an error, not a stack overflow.
        assert!(!skips(&"[".repeat(n)));
        assert!(!skips(&format!("{}1{}", r#"[{"a":"#.repeat(n), "]}".repeat(n))));
    }

    #[test]
    fn containers_read_member_by_member_nest_at_most_max_depth() {
        fn nest(reader: &mut Reader<'_>) -> Scan<()> {
            reader.array(|r| if r.peek()? == Kind::Array { nest(r) } else { r.skip() })
        }
        let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert!(nest(&mut Reader::new(&deep(MAX_DEPTH))).is_ok());
        assert_eq!(nest(&mut Reader::new(&deep(MAX_DEPTH + 1))), Err(NotJson));
    }

    #[test]
    fn strings_borrow_unless_escaped_and_decode_as_serde_json_does() {
        let mut reader = Reader::new(r#"["plain", "a\nb\u00e9\ud83d\ude00", "\ud800"]"#);
        let mut seen = Vec::new();
        let result = reader.array(|r| {
            seen.push(r.string());
            Ok(())
        });
        assert!(result.is_ok());
        assert!(matches!(&seen[0], Ok(Cow::Borrowed("plain"))));
        assert_eq!(seen[1].as_deref(), Ok("a\nb\u{e9}\u{1f600}"));
        assert!(matches!(seen[1], Ok(Cow::Owned(_))));
        // A lone surrogate is not a string serde_json decodes.
        assert_eq!(seen[2], Err(NotJson));
    }

    #[test]
    fn raw_values_are_their_exact_text() {
        let mut reader = Reader::new(r#"{ "a" :  [1, {"b": "c"}]  , "d": "e" }"#);
        let mut raws = Vec::new();
        assert!(reader.object(|r, key| r.raw().map(|raw| raws.push((key.into_owned(), raw)))).is_ok());
        assert_eq!(raws, [("a".to_owned(), r#"[1, {"b": "c"}]"#), ("d".to_owned(), r#""e""#)]);
        assert!(reader.end().is_ok());
    }
}
