//! The environment audit: which variables enter a sandbox, which of them look like secrets and why,
//! and what was decided for each, as a value ([`EnvAudit`]). Pure: env files come in as text, the
//! host environment as a list of candidates; nothing here reads the environment or a file.
//!
//! What it enforces: a variable flagged as a secret is [`Decision::Withheld`] unless the profile's
//! `allow_secrets` names it (or the user accepts it, which the binary records as
//! [`Decision::AcceptedByUser`]). No value ever leaves this module in full: [`AuditEntry`] holds only
//! [`mask`]ed text, [`render_audit`] prints masked text or a reason, and [`EnvFileError`] names the
//! file, line, column and key, never the value.
//!
//! Order: content rules run before the name rule, so the reported reason is the most specific one;
//! variables corral sets itself ([`AuditSource::Corral`]: `HOME`, `PATH`, …) are never flagged.
//!
//! # Rules
//!
//! A variable is flagged when its **value** matches a content rule (checked in this order), or else
//! when its **name** looks secret and its value is not trivial.
//!
//! | Rule (code) | Example (shape) | Why |
//! |---|---|---|
//! | `known_prefix` | `ghp_` + 36 alphanumerics; `sk-ant-api03-…`; `AKIA` + 16 `[A-Z0-9]` | Issuers prefix their tokens so scanners can find them. Prefixes: `sk-ant-`, `github_pat_`, `sk_live_`, `rk_live_`, `sk-`, `ghp_`, `gho_`, `ghs_`, `ghu_`, `ghr_`, `glpat-`, `xoxb-`, `xoxp-`, `xapp-`, `AKIA`, `ASIA`, `AIza`, `npm_`, `pypi-`, `hf_`. The prefix must start the value or follow a non-alphanumeric (`Bearer ghp_…`, `https://x:ghp_…@`), and be followed by a long run of the token's alphabet with at least two of lower case, upper case and digits (so `sk-1` or `task-runner-…` are not tokens). |
//! | `pem_block` | `-----BEGIN OPENSSH PRIVATE KEY-----` | A private key; any `-----BEGIN …-----` is flagged, certificates included. |
//! | `jwt` | `eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig` | A bearer credential: three base64url parts, the first decodes to a JSON object with `"alg"` (RFC 7519 §7.2). |
//! | `url_password` | `postgres://app:hunter2@db:5432/app` | RFC 3986 userinfo with a password. A password that starts with `$` (an unexpanded `$VAR`) or is all `*` is a placeholder, not flagged. |
//! | `base64_encoded` | base64 of `ghp_…` | A base64 word (≥ 20 chars) that decodes to printable text is judged by what it decodes to, with these same rules (two levels deep). |
//! | `high_entropy` | `wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY` | A random string is a key. A word of ≥ 20 chars of `[A-Za-z0-9+/=_-]` with lower case, upper case and digits, that is not base64 of text, whose Shannon entropy reaches [`entropy_threshold`] of its length. |
//! | `secret_name` | `DB_PASSWORD=hunter2` | Name contains `TOKEN`, `SECRET`, `PASSWORD`, `PASSWD`, `API_KEY`, `CREDENTIAL` or `PRIVATE`, or ends in `_KEY` (any case), and the value is not trivial (empty, `0`, `1`, `true`, `false`, `yes`, `no`, `on`, `off`). |
//!
//! Not flagged, each pinned by a test: absolute paths and path lists (`/usr/local/bin:/usr/bin`), UUIDs,
//! git SHAs (40 hex) and short SHAs (hex never has both cases), base64 of ordinary text, semver,
//! URLs without a password, `LS_COLORS`-style values, locale names, `TERM` values, `EDITOR=vim`,
//! long low-entropy strings, CamelCase identifiers, Nix store paths, `SSH_AUTH_SOCK=/run/user/…`
//! (its value is a path; the socket is a capability, which is the planner's concern, not this one's).
//!
//! # What the audit does NOT catch
//!
//! - A secret split across variables, or assembled from parts at run time.
//! - A secret below the rules: shorter than 20 characters (`hunter2`), all lower case or all upper
//!   case plus digits (indistinguishable from Nix hashes and base32 ids), hex of any length (the
//!   same shape as git SHAs and checksums), or encoded some other way than base64.
//! - Some random values: of uniformly random base62 strings, the rules miss 3.6% at 20 characters
//!   (mostly: no digit), 1.9% at 24, 0.6% at 32, under 0.5% from 40 on (entropy just below
//!   [`entropy_threshold`], or a missing character class); pinned by a calibration test.
//! - A secret that is not in a variable's value: in a file (the working directory's `.env`, a
//!   credentials file the profile binds), a command-line argument, or behind a socket
//!   (`SSH_AUTH_SOCK`).
//! - A base64 key containing `/` inside a longer value (`--key wJal…/K7…`): there the value is cut
//!   at `/` (so paths and URLs fall apart), and the pieces may be shorter than 20 characters. As the
//!   whole value, the same key is caught.
//! - A secret under an unsuspicious name with an unrecognised shape (`DB=hunter2`, `x:y@host`
//!   without a scheme).
//! - Conversely, false positives are possible: by name (`PASSWORD_STORE_DIR=/home/u/.password-store`,
//!   `GOOGLE_APPLICATION_CREDENTIALS=/path`), and by content for compressed or encrypted blobs that
//!   are not credentials (direnv's `DIRENV_DIFF`). The profile's `allow_secrets` lets them through,
//!   by name or glob.

use globset::{Glob, GlobSet, GlobSetBuilder};
use serde::ser::SerializeStruct;
use serde::{Serialize, Serializer};
use std::collections::BTreeMap;
use std::fmt;

// ---------------------------------------------------------------------------------------------
// Env files
// ---------------------------------------------------------------------------------------------

/// One `KEY=VALUE` assignment read from an env file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvFileEntry {
    /// The variable's name.
    pub name: String,
    /// The value, unquoted and unescaped.
    pub value: String,
    /// 1-based line of the key (a quoted value may continue on later lines).
    pub line: usize,
}

/// Which quote opened a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quote {
    /// `'…'`: literal.
    Single,
    /// `"…"`: with `\n`, `\t`, `\r`, `\"`, `\\` escapes.
    Double,
}

impl fmt::Display for Quote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Quote::Single => "single",
            Quote::Double => "double",
        })
    }
}

/// An env file that could not be read. Each names `origin:line:column` and what is wrong, never a
/// value; text that may be a value (a line without `=`) is shown only when short and not flagged
/// by content, else [`mask`]ed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvFileError {
    /// A line that is neither blank, a comment, nor an assignment.
    #[error("{origin}:{line}:{column}: expected KEY=VALUE, found {found:?}")]
    ExpectedAssignment {
        /// File path.
        origin: String,
        /// 1-based line.
        line: usize,
        /// 1-based column (in characters).
        column: usize,
        /// The line, trimmed (masked if it looks like a secret or is long).
        found: String,
    },
    /// The text before `=` is not a valid name.
    #[error(
        "{origin}:{line}:{column}: bad key {key:?}: a key is a letter or `_`, then letters, digits or `_`"
    )]
    BadKey {
        /// File path.
        origin: String,
        /// 1-based line.
        line: usize,
        /// 1-based column (in characters).
        column: usize,
        /// The key as written (masked if it looks like a secret or is long).
        key: String,
    },
    /// A quoted value with no closing quote before the end of the file.
    #[error(
        "{origin}:{line}:{column}: unterminated {quote} quote in the value of {key} (hint: close it; inside double quotes write a literal `\"` as `\\\"`)"
    )]
    Unterminated {
        /// File path.
        origin: String,
        /// 1-based line of the opening quote.
        line: usize,
        /// 1-based column of the opening quote.
        column: usize,
        /// The variable.
        key: String,
        /// Which quote.
        quote: Quote,
    },
    /// Text other than a ` # comment` after a closing quote.
    #[error(
        "{origin}:{line}:{column}: unexpected text after the closing quote of {key}'s value (only a `# comment` may follow)"
    )]
    TrailingText {
        /// File path.
        origin: String,
        /// 1-based line.
        line: usize,
        /// 1-based column of the unexpected text.
        column: usize,
        /// The variable.
        key: String,
    },
    /// An unquoted value that opens a PEM block: its next lines would be read as assignments.
    #[error(
        "{origin}:{line}:{column}: the value of {key} opens a PEM block but is not quoted (hint: put a multi-line value in double quotes)"
    )]
    UnquotedMultiline {
        /// File path.
        origin: String,
        /// 1-based line.
        line: usize,
        /// 1-based column of the value.
        column: usize,
        /// The variable.
        key: String,
    },
}

/// Longest text an error quotes as written; longer text is masked.
const MAX_ERROR_EXCERPT: usize = 40;

/// Parses an env file (dotenv syntax) into its assignments, in file order. `origin` names the file in
/// errors.
///
/// Syntax, as python-dotenv reads it: `KEY=VALUE` or `export KEY=VALUE`, spaces allowed around `=`;
/// blank lines and lines starting with `#` are skipped; an unquoted value is trimmed and ends at a
/// `#` that follows whitespace (`a#b` keeps its `#`); `'…'` is literal; `"…"` understands `\n`, `\t`,
/// `\r`, `\"` and `\\` (any other backslash is kept as written); both quotes may span lines; only a
/// `# comment` may follow a closing quote. No `$VAR` expansion. A key repeated is returned each time
/// (the caller lets the last win). CRLF line ends and a leading byte order mark are accepted.
pub fn parse_env_file(origin: &str, text: &str) -> Result<Vec<EnvFileEntry>, EnvFileError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut entries = Vec::new();
    let mut pos = 0;
    let mut line = 1;
    while pos < text.len() {
        let line_start = pos;
        let line_end = text[pos..].find('\n').map_or(text.len(), |i| pos + i);
        let raw = &text[line_start..line_end];
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        let col = |byte_off: usize| raw[..byte_off].chars().count() + 1;
        let trimmed = raw.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            pos = line_end + 1;
            line += 1;
            continue;
        }
        let mut off = raw.len() - trimmed.len();
        let mut rest = trimmed;
        if let Some(r) = rest.strip_prefix("export") {
            if r.starts_with([' ', '\t']) {
                let r = r.trim_start();
                off += rest.len() - r.len();
                rest = r;
            }
        }
        let Some(eq) = rest.find('=') else {
            return Err(EnvFileError::ExpectedAssignment {
                origin: origin.to_string(),
                line,
                column: col(raw.len() - trimmed.len()),
                found: excerpt(trimmed.trim_end()),
            });
        };
        let key = rest[..eq].trim_end();
        if !is_valid_key(key) {
            return Err(EnvFileError::BadKey {
                origin: origin.to_string(),
                line,
                column: col(off),
                key: excerpt(key),
            });
        }
        let after = &rest[eq + 1..];
        let value_text = after.trim_start_matches([' ', '\t']);
        let value_off = off + eq + 1 + (after.len() - value_text.len());
        let quote = match value_text.chars().next() {
            Some('"') => Some(Quote::Double),
            Some('\'') => Some(Quote::Single),
            _ => None,
        };
        let Some(quote) = quote else {
            let value = strip_inline_comment(value_text).trim_end();
            if value.contains("-----BEGIN ") && !value.contains("-----END ") {
                return Err(EnvFileError::UnquotedMultiline {
                    origin: origin.to_string(),
                    line,
                    column: col(value_off),
                    key: key.to_string(),
                });
            }
            entries.push(EnvFileEntry {
                name: key.to_string(),
                value: value.to_string(),
                line,
            });
            pos = line_end + 1;
            line += 1;
            continue;
        };
        // The quoted value may run past this line: scan the whole text from the opening quote.
        let open = line_start + value_off;
        let Some((value, close)) = scan_quoted(text, open + 1, quote) else {
            return Err(EnvFileError::Unterminated {
                origin: origin.to_string(),
                line,
                column: col(value_off),
                key: key.to_string(),
                quote,
            });
        };
        entries.push(EnvFileEntry {
            name: key.to_string(),
            value,
            line,
        });
        line += text[open..close].matches('\n').count();
        let close_line_start = text[..close].rfind('\n').map_or(0, |i| i + 1);
        let close_line_end = text[close..].find('\n').map_or(text.len(), |i| close + i);
        let tail_raw = &text[close + 1..close_line_end];
        let tail_raw = tail_raw.strip_suffix('\r').unwrap_or(tail_raw);
        let tail = tail_raw.trim_start();
        if !tail.is_empty() && !tail.starts_with('#') {
            let before = &text[close_line_start..close + 1 + (tail_raw.len() - tail.len())];
            return Err(EnvFileError::TrailingText {
                origin: origin.to_string(),
                line,
                column: before.chars().count() + 1,
                key: key.to_string(),
            });
        }
        pos = close_line_end + 1;
        line += 1;
    }
    Ok(entries)
}

/// `[A-Za-z_][A-Za-z0-9_]*`.
fn is_valid_key(key: &str) -> bool {
    let mut chars = key.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Cuts an unquoted value at the first `#` that follows whitespace (python-dotenv's rule).
fn strip_inline_comment(value: &str) -> &str {
    let mut prev_space = false;
    for (i, c) in value.char_indices() {
        if c == '#' && prev_space {
            return &value[..i];
        }
        prev_space = c == ' ' || c == '\t';
    }
    value
}

/// Reads a quoted value starting just after its opening quote at byte `start`. Returns the value and
/// the byte index of the closing quote, or `None` when the text ends first. CRLF inside becomes LF.
fn scan_quoted(text: &str, start: usize, quote: Quote) -> Option<(String, usize)> {
    let mut value = String::new();
    let mut chars = text[start..].char_indices();
    while let Some((i, c)) = chars.next() {
        match (quote, c) {
            (Quote::Single, '\'') | (Quote::Double, '"') => return Some((value, start + i)),
            (Quote::Double, '\\') => match chars.next() {
                Some((_, 'n')) => value.push('\n'),
                Some((_, 't')) => value.push('\t'),
                Some((_, 'r')) => value.push('\r'),
                Some((_, '"')) => value.push('"'),
                Some((_, '\\')) => value.push('\\'),
                Some((_, other)) => {
                    value.push('\\');
                    value.push(other);
                }
                None => return None,
            },
            (Quote::Single | Quote::Double, '\r') if text[start + i..].starts_with("\r\n") => {}
            (Quote::Single | Quote::Double, c) => value.push(c),
        }
    }
    None
}

/// Text of a malformed line as an error may quote it: as written when short and not flagged by
/// content, else masked.
fn excerpt(s: &str) -> String {
    if s.chars().count() > MAX_ERROR_EXCERPT || classify_content(s).is_some() {
        mask(s)
    } else {
        s.to_string()
    }
}

// ---------------------------------------------------------------------------------------------
// Secret detection
// ---------------------------------------------------------------------------------------------

/// Why a variable was flagged as a secret. Serialises as `{"code": …, "text": …}`.
#[derive(Debug, Clone, PartialEq)]
pub enum SecretReason {
    /// The value carries a token with this issuer prefix (e.g. `ghp_`).
    KnownPrefix(&'static str),
    /// The value carries a JSON Web Token.
    Jwt,
    /// The value carries a PEM block (`-----BEGIN …-----`).
    PemBlock,
    /// The value carries a URL with a password (`scheme://user:pass@host`).
    UrlPassword,
    /// The value carries base64 that decodes to something flagged for this inner reason.
    Base64Encoded(Box<SecretReason>),
    /// The value carries a long random-looking word.
    HighEntropy {
        /// Shannon entropy of that word, bits per character, rounded to two decimals.
        bits_per_char: f64,
    },
    /// The name looks secret and the value is not trivial.
    SecretName,
}

impl SecretReason {
    /// Stable snake_case code, for `--json` and tests.
    pub fn code(&self) -> &'static str {
        match self {
            SecretReason::KnownPrefix(_) => "known_prefix",
            SecretReason::Jwt => "jwt",
            SecretReason::PemBlock => "pem_block",
            SecretReason::UrlPassword => "url_password",
            SecretReason::Base64Encoded(_) => "base64_encoded",
            SecretReason::HighEntropy { .. } => "high_entropy",
            SecretReason::SecretName => "secret_name",
        }
    }

    /// A short human text. Never contains any part of the value but a known prefix.
    pub fn text(&self) -> String {
        match self {
            SecretReason::KnownPrefix(p) => format!("known prefix {p}"),
            SecretReason::Jwt => "JSON Web Token".to_string(),
            SecretReason::PemBlock => "PEM block".to_string(),
            SecretReason::UrlPassword => "URL with a password".to_string(),
            SecretReason::Base64Encoded(inner) => format!("base64 of: {}", inner.text()),
            SecretReason::HighEntropy { bits_per_char } => {
                format!("high entropy, {bits_per_char:.2} bits/char")
            }
            SecretReason::SecretName => "secret-like name".to_string(),
        }
    }
}

impl Serialize for SecretReason {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("SecretReason", 2)?;
        s.serialize_field("code", self.code())?;
        s.serialize_field("text", &self.text())?;
        s.end()
    }
}

/// Characters allowed after a known prefix.
#[derive(Debug, Clone, Copy)]
enum TokenAlphabet {
    /// `[A-Za-z0-9]`.
    Alnum,
    /// `[A-Z0-9]`.
    UpperAlnum,
    /// `[A-Za-z0-9_-]`.
    Token,
}

impl TokenAlphabet {
    fn contains(self, c: char) -> bool {
        match self {
            TokenAlphabet::Alnum => c.is_ascii_alphanumeric(),
            TokenAlphabet::UpperAlnum => c.is_ascii_uppercase() || c.is_ascii_digit(),
            TokenAlphabet::Token => c.is_ascii_alphanumeric() || c == '_' || c == '-',
        }
    }
}

/// How long the run after a prefix must be.
#[derive(Debug, Clone, Copy)]
enum RunLength {
    /// At least this many characters.
    AtLeast(usize),
    /// Exactly this many, then no further alphanumeric.
    Exactly(usize),
}

/// One issuer prefix and the shape of what follows it.
#[derive(Debug)]
struct PrefixRule {
    prefix: &'static str,
    alphabet: TokenAlphabet,
    run: RunLength,
}

/// Known token prefixes. Where one prefix begins another (`sk-ant-`, `sk-`), the longer comes first.
/// Run lengths are a little under the issuers' documented lengths so that format revisions still
/// match, and long enough that words (`sk-learn`) do not.
const PREFIX_RULES: &[PrefixRule] = &[
    // Anthropic API key: sk-ant-api03-<~95>.
    rule("sk-ant-", TokenAlphabet::Token, RunLength::AtLeast(32)),
    // GitHub fine-grained PAT: github_pat_<82>.
    rule("github_pat_", TokenAlphabet::Token, RunLength::AtLeast(40)),
    // Stripe live secret and restricted keys: sk_live_<24+>, rk_live_<24+>.
    rule("sk_live_", TokenAlphabet::Alnum, RunLength::AtLeast(20)),
    rule("rk_live_", TokenAlphabet::Alnum, RunLength::AtLeast(20)),
    // OpenAI: sk-<48> (legacy), sk-proj-<…>.
    rule("sk-", TokenAlphabet::Token, RunLength::AtLeast(32)),
    // GitHub classic tokens: gh?_<36> (personal, OAuth, server, user-to-server, refresh).
    rule("ghp_", TokenAlphabet::Alnum, RunLength::AtLeast(30)),
    rule("gho_", TokenAlphabet::Alnum, RunLength::AtLeast(30)),
    rule("ghs_", TokenAlphabet::Alnum, RunLength::AtLeast(30)),
    rule("ghu_", TokenAlphabet::Alnum, RunLength::AtLeast(30)),
    rule("ghr_", TokenAlphabet::Alnum, RunLength::AtLeast(30)),
    // GitLab personal access token: glpat-<20>.
    rule("glpat-", TokenAlphabet::Token, RunLength::AtLeast(20)),
    // Slack bot, user and app-level tokens.
    rule("xoxb-", TokenAlphabet::Token, RunLength::AtLeast(20)),
    rule("xoxp-", TokenAlphabet::Token, RunLength::AtLeast(20)),
    rule("xapp-", TokenAlphabet::Token, RunLength::AtLeast(20)),
    // AWS access key ids, long-term and temporary: AKIA/ASIA + 16 [A-Z0-9].
    rule("AKIA", TokenAlphabet::UpperAlnum, RunLength::Exactly(16)),
    rule("ASIA", TokenAlphabet::UpperAlnum, RunLength::Exactly(16)),
    // Google API key: AIza + 35.
    rule("AIza", TokenAlphabet::Token, RunLength::Exactly(35)),
    // npm access token: npm_<36>.
    rule("npm_", TokenAlphabet::Alnum, RunLength::AtLeast(30)),
    // PyPI API token: pypi-<macaroon, 150+>.
    rule("pypi-", TokenAlphabet::Token, RunLength::AtLeast(50)),
    // Hugging Face user access token: hf_<34>.
    rule("hf_", TokenAlphabet::Alnum, RunLength::AtLeast(30)),
];

const fn rule(prefix: &'static str, alphabet: TokenAlphabet, run: RunLength) -> PrefixRule {
    PrefixRule {
        prefix,
        alphabet,
        run,
    }
}

/// Does `rule` match in `value` with its prefix at byte `at`?
fn prefix_matches_at(value: &str, at: usize, rule: &PrefixRule) -> bool {
    let starts_word = value[..at]
        .chars()
        .next_back()
        .is_none_or(|c| !c.is_ascii_alphanumeric());
    if !starts_word {
        return false;
    }
    let rest = &value[at + rule.prefix.len()..];
    // Every alphabet is ASCII, so the run's length in bytes is its length in characters.
    let run_len = rest.chars().take_while(|&c| rule.alphabet.contains(c)).count();
    let run = &rest[..run_len];
    let long_enough = match rule.run {
        RunLength::AtLeast(n) => run_len >= n,
        RunLength::Exactly(n) => {
            run_len == n
                && rest[run_len..]
                    .chars()
                    .next()
                    .is_none_or(|c| !c.is_ascii_alphanumeric())
        }
    };
    long_enough && char_classes(run).count() >= 2
}

/// The first known prefix (in [`PREFIX_RULES`] order) that matches anywhere in `value`.
fn find_known_prefix(value: &str) -> Option<&'static str> {
    PREFIX_RULES
        .iter()
        .find(|r| {
            value
                .match_indices(r.prefix)
                .any(|(at, _)| prefix_matches_at(value, at, r))
        })
        .map(|r| r.prefix)
}

/// The known prefix that `value` starts with, when its rule matches there.
fn leading_known_prefix(value: &str) -> Option<&'static str> {
    PREFIX_RULES
        .iter()
        .find(|r| value.starts_with(r.prefix) && prefix_matches_at(value, 0, r))
        .map(|r| r.prefix)
}

/// Which of lower case, upper case and digits a string contains.
#[derive(Debug, Clone, Copy, Default)]
struct CharClasses {
    lower: bool,
    upper: bool,
    digit: bool,
}

impl CharClasses {
    fn count(self) -> usize {
        usize::from(self.lower) + usize::from(self.upper) + usize::from(self.digit)
    }
}

fn char_classes(s: &str) -> CharClasses {
    let mut k = CharClasses::default();
    for c in s.chars() {
        k.lower |= c.is_ascii_lowercase();
        k.upper |= c.is_ascii_uppercase();
        k.digit |= c.is_ascii_digit();
    }
    k
}

/// Does `value` contain a PEM encapsulation boundary, `-----BEGIN <label>-----` (RFC 7468 §2)?
fn has_pem_block(value: &str) -> bool {
    value
        .match_indices("-----BEGIN ")
        .any(|(i, m)| value[i + m.len()..].contains("-----"))
}

/// Does a word of `value` look like a JWT: three base64url parts, the first a JSON object with
/// `"alg"` (RFC 7519 §7.2; JWS header, RFC 7515 §4.1.1)? An empty third part (`alg: none`) counts.
fn has_jwt(value: &str) -> bool {
    value
        .split(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '=')))
        .any(|word| {
            let mut parts = word.split('.');
            let (Some(header), Some(payload), Some(_sig), None) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                return false;
            };
            if header.is_empty() || payload.is_empty() {
                return false;
            }
            decode_base64(header)
                .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
                .is_some_and(|json| json.get("alg").is_some())
        })
}

/// Does `value` contain a URL whose userinfo has a non-placeholder password (RFC 3986 §3.2.1)?
fn has_url_password(value: &str) -> bool {
    value.match_indices("://").any(|(i, _)| {
        let has_scheme = value[..i]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '.' | '-'));
        let rest = &value[i + 3..];
        let end = rest
            .find(|c: char| matches!(c, '/' | '?' | '#') || c.is_whitespace())
            .unwrap_or(rest.len());
        let authority = &rest[..end];
        let password = authority
            .rfind('@')
            .and_then(|at| authority[..at].split_once(':'))
            .map(|(_user, pass)| pass);
        has_scheme
            && password.is_some_and(|p| !p.is_empty() && !p.starts_with('$') && !p.chars().all(|c| c == '*'))
    })
}

/// Shortest word the entropy and base64 rules look at. Below this, a word's entropy says little
/// (at most log2(19) ≈ 4.25 bits/char) and real keys are longer.
pub const MIN_ENTROPY_LEN: usize = 20;
/// How many base64 layers [`classify_content`] looks through.
const MAX_BASE64_DEPTH: usize = 2;
/// Threshold slope and intercept in log2(length), and its ceiling (bits per character). Calibrated
/// on 20 000 uniformly random base62 strings per length: their 1st percentile of Shannon entropy is
/// 3.65 (20 chars), 3.86 (24), 4.07 (28), 4.20 (32), 4.45 (40), 4.63 (48), 4.90 (64), 5.25 (100);
/// the line sits just under it, so about 1% of random strings are missed. Ordinary mixed-class words
/// sit well below it: `ThisIsALongCamelCaseIdentifierName2` 4.16 (threshold 4.25 at 35),
/// `Password1234Password1234Password1234` 3.42, git SHAs about 3.7.
const ENTROPY_SLOPE: f64 = 0.75;
const ENTROPY_INTERCEPT: f64 = 0.40;
const ENTROPY_CEILING: f64 = 4.85;

/// Entropy (bits per character) a word of `len` characters needs to be flagged `high_entropy`:
/// `min(0.75 · log2(len) + 0.40, 4.85)`. E.g. 3.64 at 20 characters, 4.39 at 40, 4.85 from 60 on.
pub fn entropy_threshold(len: usize) -> f64 {
    let n = len as f64;
    (ENTROPY_SLOPE * n.log2() + ENTROPY_INTERCEPT).min(ENTROPY_CEILING)
}

/// Shannon entropy of the character distribution of `s`, in bits per character.
fn shannon_bits_per_char(s: &str) -> f64 {
    let mut counts: BTreeMap<char, usize> = BTreeMap::new();
    for c in s.chars() {
        *counts.entry(c).or_default() += 1;
    }
    let n = s.chars().count() as f64;
    counts
        .values()
        .map(|&k| {
            let p = k as f64 / n;
            -p * p.log2()
        })
        .sum()
}

/// `[A-Za-z0-9+/=_-]`: base64 (standard and URL-safe) and most token alphabets.
fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=' | '_' | '-')
}

/// The words the entropy rule looks at. A value that is one token-alphabet word (and not a path) is
/// one word, `/` included, since base64 keys contain `/`; otherwise the value is cut at every other
/// character and at `/`, so paths and URLs fall apart into their ordinary components.
fn entropy_words(value: &str) -> Vec<&str> {
    let v = value.trim();
    if !v.is_empty() && !v.starts_with('/') && v.chars().all(is_token_char) {
        return vec![v];
    }
    v.split(|c: char| c == '/' || !is_token_char(c))
        .filter(|w| !w.is_empty())
        .collect()
}

/// Decodes standard or URL-safe base64, padded or not (RFC 4648 §4, §5). `None` if `s` is not that.
fn decode_base64(s: &str) -> Option<Vec<u8>> {
    let body = s.trim_end_matches('=');
    let padding = s.len() - body.len();
    if padding > 2 || (padding > 0 && s.len() % 4 != 0) || body.len() % 4 == 1 {
        return None;
    }
    if body.contains(['+', '/']) && body.contains(['-', '_']) {
        return None;
    }
    let mut out = Vec::with_capacity(body.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits: u32 = 0;
    for b in body.bytes() {
        let sextet = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(sextet);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from((acc >> bits) & 0xff).ok()?);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// `s` decoded from base64, when that gives non-empty printable UTF-8 text.
fn base64_text(s: &str) -> Option<String> {
    let text = String::from_utf8(decode_base64(s)?).ok()?;
    let printable = !text.is_empty()
        && text
            .chars()
            .all(|c| !c.is_control() || matches!(c, '\n' | '\t' | '\r'));
    printable.then_some(text)
}

/// Is a variable's name secret-like (`*TOKEN*`, `*SECRET*`, `*PASSWORD*`, `*PASSWD*`, `*API_KEY*`,
/// `*CREDENTIAL*`, `*PRIVATE*`, `*_KEY`, any case)?
pub fn is_secret_name(name: &str) -> bool {
    const PARTS: &[&str] = &[
        "TOKEN",
        "SECRET",
        "PASSWORD",
        "PASSWD",
        "API_KEY",
        "CREDENTIAL",
        "PRIVATE",
    ];
    let upper = name.to_ascii_uppercase();
    PARTS.iter().any(|p| upper.contains(p)) || upper.ends_with("_KEY")
}

/// Is a value too trivial to be a secret whatever its name (empty, `0`, `1`, `true`, `false`,
/// `yes`, `no`, `on`, `off`, any case)?
fn is_trivial(value: &str) -> bool {
    const TRIVIAL: &[&str] = &["", "0", "1", "true", "false", "yes", "no", "on", "off"];
    let v = value.trim();
    TRIVIAL.iter().any(|t| v.eq_ignore_ascii_case(t))
}

/// Classifies a variable: the first content rule its value matches, else [`SecretReason::SecretName`]
/// when its name is secret-like and its value not trivial, else `None`. See the module's table.
pub fn classify(name: &str, value: &str) -> Option<SecretReason> {
    classify_content(value)
        .or_else(|| (is_secret_name(name) && !is_trivial(value)).then_some(SecretReason::SecretName))
}

/// The content rules alone, in order: known prefix, PEM block, JWT, URL password, base64 of a
/// secret, high entropy.
pub fn classify_content(value: &str) -> Option<SecretReason> {
    classify_content_at(value, 0)
}

fn classify_content_at(value: &str, depth: usize) -> Option<SecretReason> {
    if let Some(p) = find_known_prefix(value) {
        return Some(SecretReason::KnownPrefix(p));
    }
    if has_pem_block(value) {
        return Some(SecretReason::PemBlock);
    }
    if has_jwt(value) {
        return Some(SecretReason::Jwt);
    }
    if has_url_password(value) {
        return Some(SecretReason::UrlPassword);
    }
    for word in entropy_words(value) {
        if word.chars().count() < MIN_ENTROPY_LEN {
            continue;
        }
        // Base64 of text is judged by the text: base64 of English is not a key, base64 of a key is.
        if let Some(text) = base64_text(word) {
            if depth < MAX_BASE64_DEPTH {
                if let Some(inner) = classify_content_at(&text, depth + 1) {
                    return Some(SecretReason::Base64Encoded(Box::new(inner)));
                }
            }
            continue;
        }
        let classes = char_classes(word);
        if !(classes.lower && classes.upper && classes.digit) {
            continue;
        }
        let bits = shannon_bits_per_char(word);
        if bits >= entropy_threshold(word.chars().count()) {
            return Some(SecretReason::HighEntropy {
                bits_per_char: (bits * 100.0).round() / 100.0,
            });
        }
    }
    None
}

// ---------------------------------------------------------------------------------------------
// Masking
// ---------------------------------------------------------------------------------------------

/// Values at least this long (in characters) keep their first 2 characters; shorter ones, none.
pub const MASK_MIN_LEN: usize = 12;
/// Values at least this long keep their first 4 characters.
pub const MASK_LONG_LEN: usize = 20;
/// Characters kept from a value of [`MASK_MIN_LEN`]..[`MASK_LONG_LEN`] characters.
const MASK_SHORT_KEEP: usize = 2;
/// Characters kept from a value of [`MASK_LONG_LEN`] characters or more.
const MASK_LONG_KEEP: usize = 4;

/// A value as the audit shows it: never in full. Keeps a known token prefix when the value starts
/// with a token (`ghp_…(40)`), else the first 4 characters of a value of 20 or more, the first 2 of
/// one of 12 to 19, nothing of a shorter one (`…(5)`); then `…` and the length in characters.
pub fn mask(value: &str) -> String {
    let len = value.chars().count();
    let kept: String = if let Some(prefix) = leading_known_prefix(value) {
        prefix.to_string()
    } else if len >= MASK_LONG_LEN {
        value.chars().take(MASK_LONG_KEEP).collect()
    } else if len >= MASK_MIN_LEN {
        value.chars().take(MASK_SHORT_KEEP).collect()
    } else {
        String::new()
    };
    format!("{kept}…({len})")
}

// ---------------------------------------------------------------------------------------------
// The audit
// ---------------------------------------------------------------------------------------------

/// Where a candidate variable came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditSource {
    /// The host environment, passed by the profile's `env.pass`.
    Host,
    /// The profile's `env.set`.
    ProfileSet,
    /// The global env file.
    GlobalFile,
    /// A file named in the profile's `env.files`.
    ProfileFile,
    /// The project's env file.
    ProjectFile,
    /// A command-line flag.
    Flag,
    /// Named in the extra-env pass-through list.
    ExtraEnv,
    /// Set by corral itself (`HOME`, `PATH`, …): never flagged.
    Corral,
}

impl AuditSource {
    /// How [`render_audit`] names the source.
    pub fn label(self) -> &'static str {
        match self {
            AuditSource::Host => "from host",
            AuditSource::ProfileSet => "set by profile",
            AuditSource::GlobalFile => "from global file",
            AuditSource::ProfileFile => "from env.files",
            AuditSource::ProjectFile => "from project file",
            AuditSource::Flag => "from flag",
            AuditSource::ExtraEnv => "from extra env",
            AuditSource::Corral => "set by corral",
        }
    }
}

/// What happens to a variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Not flagged: enters the sandbox.
    Pass,
    /// Flagged and not allowed: kept out.
    Withheld,
    /// Flagged, but the profile's `allow_secrets` names it: enters the sandbox.
    AllowedByProfile,
    /// Flagged, and the user let it in at the prompt. Never made by [`audit`]; the binary sets it.
    AcceptedByUser,
}

/// One candidate variable, audited. Holds the masked value only.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEntry {
    /// The variable's name.
    pub name: String,
    /// Where it came from.
    pub source: AuditSource,
    /// The value as [`mask`] shows it.
    pub masked: String,
    /// Why it looks like a secret, if it does.
    pub flagged: Option<SecretReason>,
    /// What happens to it.
    pub decision: Decision,
}

/// The whole audit of one launch.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct EnvAudit {
    /// Every candidate, in the order given.
    pub entries: Vec<AuditEntry>,
    /// Host variables the profile did not pass (names only).
    pub left_out: Vec<String>,
}

/// Names or globs a profile lets through although flagged. A pattern that is not a valid glob
/// matches only the identical name (fails closed; the profile loader reports bad globs).
#[derive(Debug)]
struct AllowList {
    exact: Vec<String>,
    globs: GlobSet,
}

impl AllowList {
    fn new(patterns: &[String]) -> Self {
        let mut exact = Vec::new();
        let mut builder = GlobSetBuilder::new();
        for p in patterns {
            match Glob::new(p) {
                Ok(g) if p.contains(['*', '?', '[', '{']) => {
                    builder.add(g);
                }
                Ok(_) | Err(_) => exact.push(p.clone()),
            }
        }
        let globs = builder.build().unwrap_or_else(|_| GlobSet::empty());
        AllowList { exact, globs }
    }

    fn allows(&self, name: &str) -> bool {
        self.exact.iter().any(|e| e == name) || self.globs.is_match(name)
    }
}

/// Audits the candidate variables `(name, value, source)`: each is classified (except corral's own),
/// masked, and decided: flagged and not in `allow_secrets` (names or globs) → [`Decision::Withheld`];
/// flagged and allowed → [`Decision::AllowedByProfile`]; not flagged → [`Decision::Pass`].
/// `left_out` (host names not passed) is carried as given.
pub fn audit(
    candidates: &[(String, String, AuditSource)],
    allow_secrets: &[String],
    left_out: &[String],
) -> EnvAudit {
    let allow = AllowList::new(allow_secrets);
    let entries = candidates
        .iter()
        .map(|(name, value, source)| {
            let flagged = match source {
                AuditSource::Corral => None,
                AuditSource::Host
                | AuditSource::ProfileSet
                | AuditSource::GlobalFile
                | AuditSource::ProfileFile
                | AuditSource::ProjectFile
                | AuditSource::Flag
                | AuditSource::ExtraEnv => classify(name, value),
            };
            let decision = match &flagged {
                None => Decision::Pass,
                Some(_) if allow.allows(name) => Decision::AllowedByProfile,
                Some(_) => Decision::Withheld,
            };
            AuditEntry {
                name: name.clone(),
                source: *source,
                masked: mask(value),
                flagged,
                decision,
            }
        })
        .collect();
    EnvAudit {
        entries,
        left_out: left_out.to_vec(),
    }
}

/// Why an entry was flagged, as one phrase: `secret by name`, `secret by content (…)` or
/// `secret by name and content (…)`.
fn flag_phrase(name: &str, reason: &SecretReason) -> String {
    match reason {
        SecretReason::SecretName => "secret by name".to_string(),
        SecretReason::KnownPrefix(_)
        | SecretReason::Jwt
        | SecretReason::PemBlock
        | SecretReason::UrlPassword
        | SecretReason::Base64Encoded(_)
        | SecretReason::HighEntropy { .. } => {
            let by = if is_secret_name(name) {
                "name and content"
            } else {
                "content"
            };
            format!("secret by {by} ({})", reason.text())
        }
    }
}

/// The audit as the launch prompt shows it, one line per variable, columns aligned: first what
/// enters (`[+]`), then what is withheld (`[!]`), then what was left out (`[-]`, names only). Values
/// appear masked, never in full.
///
/// ```text
/// [+] GITHUB_TOKEN          from host ghp_…(40)  allowed by profile: secret by name and content (known prefix ghp_)
/// [+] TERM                  from host xt…(14)
/// [!] AWS_SECRET_ACCESS_KEY from host withheld: secret by name and content (high entropy, 4.66 bits/char)
/// [-] AWS_PROFILE
/// ```
pub fn render_audit(a: &EnvAudit) -> String {
    let name_width = a
        .entries
        .iter()
        .map(|e| e.name.chars().count())
        .max()
        .unwrap_or(0);
    let source_width = a
        .entries
        .iter()
        .map(|e| e.source.label().len())
        .max()
        .unwrap_or(0);
    let mut entering = Vec::new();
    let mut withheld = Vec::new();
    for e in &a.entries {
        let head = format!("{:<name_width$} {:<source_width$}", e.name, e.source.label());
        let why = e
            .flagged
            .as_ref()
            .map_or_else(|| "not flagged".to_string(), |r| flag_phrase(&e.name, r));
        match e.decision {
            Decision::Pass => entering.push(format!("[+] {head} {}", e.masked)),
            Decision::AllowedByProfile => {
                entering.push(format!("[+] {head} {}  allowed by profile: {why}", e.masked))
            }
            Decision::AcceptedByUser => {
                entering.push(format!("[+] {head} {}  accepted by you: {why}", e.masked))
            }
            Decision::Withheld => withheld.push(format!("[!] {head} withheld: {why}")),
        }
    }
    let left_out = a.left_out.iter().map(|n| format!("[-] {n}"));
    let mut out = String::new();
    for line in entering.into_iter().chain(withheld).chain(left_out) {
        out.push_str(&line);
        out.push('\n');
    }
    out
}
