//! The environment audit: env-file parsing, one test per secret rule and per false positive that must
//! not be flagged, masking, and the audit as a whole value (struct, rendering, JSON).
//!
//! No token-shaped literal sits in this file: tokens are built from a seeded generator, so secret
//! scanners have nothing to find and nothing here is a real credential.
#![allow(clippy::unwrap_used, clippy::expect_used)]

/// Everything sits in a module named after the file, so `cargo test -p corral-core envaudit` selects
/// these tests.
mod envaudit {
    use corral_core::envaudit::{
        audit, classify, classify_content, entropy_threshold, mask, parse_env_file, render_audit, AuditEntry,
        AuditSource, Decision, EnvAudit, EnvFileEntry, EnvFileError, Quote, SecretReason,
    };
    use pretty_assertions::assert_eq;
    use proptest::prelude::*;

    // ---------------------------------------------------------------------------------------------
    // Helpers
    // ---------------------------------------------------------------------------------------------

    const BASE62: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    const UPPER_ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    const TOKEN: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";
    const DIGITS: &[u8] = b"0123456789";

    /// xorshift64*: a seeded generator, so every "random" token is the same on every run.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }

        fn string(&mut self, alphabet: &[u8], n: usize) -> String {
            (0..n)
                .map(|_| {
                    let i = self.next() % u64::try_from(alphabet.len()).unwrap();
                    char::from(alphabet[usize::try_from(i).unwrap()])
                })
                .collect()
        }
    }

    /// `prefix` followed by `n` characters of `alphabet`, from a generator seeded by `seed`.
    fn fake(seed: u64, prefix: &str, alphabet: &[u8], n: usize) -> String {
        format!("{prefix}{}", Rng(seed).string(alphabet, n))
    }

    /// A GitHub-classic-shaped token: `ghp_` + 36 base62, 40 characters.
    fn ghp() -> String {
        fake(1, "ghp_", BASE62, 36)
    }

    /// An Anthropic-shaped key of 108 characters.
    fn sk_ant() -> String {
        fake(2, "sk-ant-api03-", TOKEN, 95)
    }

    /// The secret access key AWS's documentation uses as its example (not a credential).
    const AWS_EXAMPLE_SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

    /// Standard base64 with padding (RFC 4648 §4).
    fn base64(bytes: &[u8]) -> String {
        const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(char::from(A[usize::try_from((n >> (18 - 6 * i)) & 63).unwrap()]));
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

    fn entry(name: &str, value: &str, line: usize) -> EnvFileEntry {
        EnvFileEntry {
            name: name.to_string(),
            value: value.to_string(),
            line,
        }
    }

    /// Every value in `cases` classified by content (name `VALUE`, which is not secret-like).
    fn classify_all(cases: &[&str]) -> Vec<(String, Option<SecretReason>)> {
        cases
            .iter()
            .map(|v| (v.to_string(), classify("VALUE", v)))
            .collect()
    }

    /// `cases` paired with `None`: what [`classify_all`] returns when nothing is flagged.
    fn none_for(cases: &[&str]) -> Vec<(String, Option<SecretReason>)> {
        cases.iter().map(|v| (v.to_string(), None)).collect()
    }

    // ---------------------------------------------------------------------------------------------
    // parse_env_file
    // ---------------------------------------------------------------------------------------------

    #[test]
    fn parse_env_file_reads_every_form() {
        let text = [
            "# a comment",
            "",
            "FOO=bar",
            "export EXPORTED=yes",
            "  SPACED = padded value   ",
            "TRAILING=value # comment",
            "HASH=a#b",
            "EMPTY=",
            r"SINGLE='literal \n $HOME # not a comment'  # comment",
            r#"DOUBLE="tab\there \"quoted\" back\\slash \$kept new\nline""#,
            r#"MULTI="line one"#,
            r#"line two"  # after"#,
            "SQ_MULTI='a",
            "b'",
            "\t# indented comment",
            "DUP=first",
            "DUP=second",
            "export=is a key",
            "",
        ]
        .join("\n");
        assert_eq!(
            parse_env_file(".corral.env", &text).unwrap(),
            vec![
                entry("FOO", "bar", 3),
                entry("EXPORTED", "yes", 4),
                entry("SPACED", "padded value", 5),
                entry("TRAILING", "value", 6),
                entry("HASH", "a#b", 7),
                entry("EMPTY", "", 8),
                entry("SINGLE", r"literal \n $HOME # not a comment", 9),
                entry("DOUBLE", "tab\there \"quoted\" back\\slash \\$kept new\nline", 10),
                entry("MULTI", "line one\nline two", 11),
                entry("SQ_MULTI", "a\nb", 13),
                entry("DUP", "first", 16),
                entry("DUP", "second", 17),
                entry("export", "is a key", 18),
            ]
        );
    }

    #[test]
    fn parse_env_file_accepts_crlf_and_a_byte_order_mark() {
        let text = "\u{feff}A=1\r\nB=\"x\r\ny\"\r\nC=3 # c\r\n";
        assert_eq!(
            parse_env_file("env", text).unwrap(),
            vec![entry("A", "1", 1), entry("B", "x\ny", 2), entry("C", "3", 4)]
        );
    }

    #[test]
    fn parse_env_file_of_nothing_is_empty() {
        assert_eq!(parse_env_file("env", "").unwrap(), vec![]);
        assert_eq!(parse_env_file("env", "\n\n# only\n").unwrap(), vec![]);
    }

    /// The error, its text, and proof the text holds no part of `secret`.
    fn parse_error(text: &str, secret: &str) -> (EnvFileError, String) {
        let e = parse_env_file(".corral.env", text).unwrap_err();
        let msg = e.to_string();
        assert!(
            !secret.is_empty() && !msg.contains(secret),
            "{msg} contains the value"
        );
        (e, msg)
    }

    #[test]
    fn error_expected_assignment_names_position_and_line() {
        let (e, msg) = parse_error("A=1\n# c\nFOO BAR\n", "never");
        assert_eq!(
            e,
            EnvFileError::ExpectedAssignment {
                origin: ".corral.env".into(),
                line: 3,
                column: 1,
                found: "FOO BAR".into(),
            }
        );
        assert_eq!(msg, r#".corral.env:3:1: expected KEY=VALUE, found "FOO BAR""#);
    }

    #[test]
    fn error_expected_assignment_masks_a_pasted_token() {
        let token = ghp();
        let (_, msg) = parse_error(&format!("  {token}\n"), &token);
        assert_eq!(msg, r#".corral.env:1:3: expected KEY=VALUE, found "ghp_…(40)""#);
    }

    #[test]
    fn error_expected_assignment_masks_a_long_line() {
        let line = "this line is long enough that it might be a pass phrase";
        let (_, msg) = parse_error(line, line);
        assert_eq!(msg, r#".corral.env:1:1: expected KEY=VALUE, found "this…(55)""#);
    }

    #[test]
    fn error_bad_key() {
        let (e, msg) = parse_error("1FOO=hunter2", "hunter2");
        assert_eq!(
            e,
            EnvFileError::BadKey {
                origin: ".corral.env".into(),
                line: 1,
                column: 1,
                key: "1FOO".into(),
            }
        );
        assert_eq!(
            msg,
            ".corral.env:1:1: bad key \"1FOO\": a key is a letter or `_`, then letters, digits or `_`"
        );
        let (_, msg) = parse_error("export MY-VAR=hunter2", "hunter2");
        assert_eq!(
            msg,
            ".corral.env:1:8: bad key \"MY-VAR\": a key is a letter or `_`, then letters, digits or `_`"
        );
        let (_, msg) = parse_error("=hunter2", "hunter2");
        assert_eq!(
            msg,
            ".corral.env:1:1: bad key \"\": a key is a letter or `_`, then letters, digits or `_`"
        );
    }

    #[test]
    fn error_unterminated_double_quote() {
        let (e, msg) = parse_error("A=1\nTOKEN=\"s3cret-part\nmore\n", "s3cret");
        assert_eq!(
            e,
            EnvFileError::Unterminated {
                origin: ".corral.env".into(),
                line: 2,
                column: 7,
                key: "TOKEN".into(),
                quote: Quote::Double,
            }
        );
        assert_eq!(
        msg,
        ".corral.env:2:7: unterminated double quote in the value of TOKEN (hint: close it; inside double quotes write a literal `\"` as `\\\"`)"
    );
    }

    #[test]
    fn error_unterminated_double_quote_after_an_escaped_quote() {
        let (_, msg) = parse_error(r#"PASS = "hunter2\""#, "hunter2");
        assert!(msg.starts_with(".corral.env:1:8: unterminated double quote in the value of PASS"));
    }

    #[test]
    fn error_unterminated_single_quote() {
        let (_, msg) = parse_error("PASS='hunter2", "hunter2");
        assert!(msg.starts_with(".corral.env:1:6: unterminated single quote in the value of PASS"));
    }

    #[test]
    fn error_text_after_closing_quote() {
        let (e, msg) = parse_error("TOKEN=\"abc\" s3cret", "s3cret");
        assert_eq!(
            e,
            EnvFileError::TrailingText {
                origin: ".corral.env".into(),
                line: 1,
                column: 13,
                key: "TOKEN".into(),
            }
        );
        assert_eq!(
        msg,
        ".corral.env:1:13: unexpected text after the closing quote of TOKEN's value (only a `# comment` may follow)"
    );
        let (_, msg) = parse_error("A=1\nK=\"a\nb\" s3cret\n", "s3cret");
        assert!(msg.starts_with(".corral.env:3:4: unexpected text after the closing quote of K's value"));
    }

    #[test]
    fn error_unquoted_pem_block() {
        let text = "KEY=-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\n-----END RSA PRIVATE KEY-----\n";
        let (e, msg) = parse_error(text, "MIIE");
        assert_eq!(
            e,
            EnvFileError::UnquotedMultiline {
                origin: ".corral.env".into(),
                line: 1,
                column: 5,
                key: "KEY".into(),
            }
        );
        assert_eq!(
        msg,
        ".corral.env:1:5: the value of KEY opens a PEM block but is not quoted (hint: put a multi-line value in double quotes)"
    );
    }

    // ---------------------------------------------------------------------------------------------
    // Content rules, one test each
    // ---------------------------------------------------------------------------------------------

    #[test]
    fn rule_known_prefix() {
        let slack = format!(
            "{}-{}-{}",
            fake(10, "", DIGITS, 12),
            fake(11, "", DIGITS, 13),
            fake(12, "", BASE62, 24)
        );
        let cases = [
            (sk_ant(), "sk-ant-"),
            (fake(3, "github_pat_", TOKEN, 82), "github_pat_"),
            (fake(4, "sk_live_", BASE62, 24), "sk_live_"),
            (fake(5, "rk_live_", BASE62, 24), "rk_live_"),
            (fake(6, "sk-proj-", TOKEN, 48), "sk-"),
            (fake(7, "sk-", BASE62, 48), "sk-"),
            (ghp(), "ghp_"),
            (fake(8, "gho_", BASE62, 36), "gho_"),
            (fake(9, "ghs_", BASE62, 36), "ghs_"),
            (fake(13, "ghu_", BASE62, 36), "ghu_"),
            (fake(14, "ghr_", BASE62, 36), "ghr_"),
            (fake(15, "glpat-", TOKEN, 20), "glpat-"),
            (format!("xoxb-{slack}"), "xoxb-"),
            (format!("xoxp-{slack}"), "xoxp-"),
            (format!("xapp-{slack}"), "xapp-"),
            (fake(16, "AKIA", UPPER_ALNUM, 16), "AKIA"),
            (fake(17, "ASIA", UPPER_ALNUM, 16), "ASIA"),
            (fake(18, "AIza", TOKEN, 35), "AIza"),
            (fake(19, "npm_", BASE62, 36), "npm_"),
            (fake(20, "pypi-AgEIcHlwaS5vcmc", TOKEN, 150), "pypi-"),
            (fake(21, "hf_", BASE62, 34), "hf_"),
            // Inside a longer value, after a non-alphanumeric.
            (format!("Bearer {}", ghp()), "ghp_"),
            (
                format!("https://x-access-token:{}@github.com/o/r.git", ghp()),
                "ghp_",
            ),
            (format!("--api-key={}", sk_ant()), "sk-ant-"),
        ];
        let got: Vec<_> = cases.iter().map(|(v, _)| classify_content(v)).collect();
        let want: Vec<_> = cases
            .iter()
            .map(|(_, p)| Some(SecretReason::KnownPrefix(p)))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn rule_known_prefix_needs_a_token_after_it() {
        let cases: &[&str] = &[
            "sk-1",
            "ghp_abc",
            "sk-learn",
            "hf_transfer",
            "npm_config_cache",
            "AKIA1234",
            "task-runner-for-the-whole-build-system-of-the-app",
            "risk-assessment-queue-worker-number-one-two",
            // AKIA run too long, or glued to a word.
            &format!("AKIA{}", "ABCDEFGHIJ0123456789"),
            &format!("XAKIA{}", "ABCDEFGHIJ012345"),
            // One character class after the prefix is a word, not a token.
            &format!("ghp_{}", "a".repeat(36)),
        ];
        assert_eq!(classify_all(cases), none_for(cases));
    }

    #[test]
    fn rule_pem_block() {
        let key =
        "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n";
        let cert = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----";
        assert_eq!(classify_content(key), Some(SecretReason::PemBlock));
        assert_eq!(classify_content(cert), Some(SecretReason::PemBlock));
        assert_eq!(classify_content("-----BEGIN"), None);
    }

    /// The jwt.io example token (HS256, public).
    const JWT: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";

    #[test]
    fn rule_jwt() {
        assert_eq!(classify_content(JWT), Some(SecretReason::Jwt));
        assert_eq!(
            classify_content(&format!("Bearer {JWT}")),
            Some(SecretReason::Jwt)
        );
        // alg "none": the signature part is empty.
        let unsigned = format!("{}.eyJzdWIiOiIxIn0.", base64(br#"{"alg":"none"}"#));
        assert_eq!(classify_content(&unsigned), Some(SecretReason::Jwt));
    }

    #[test]
    fn rule_jwt_needs_an_alg_header() {
        let no_alg = format!("{}.{}.sig", base64(br#"{"typ":"x"}"#), base64(br#"{"a":1}"#));
        let cases: &[&str] = &["1.2.3", "a.b.c", "www.example.com", &no_alg];
        assert_eq!(classify_all(cases), none_for(cases));
    }

    #[test]
    fn rule_url_password() {
        let cases = [
            "postgres://app:hunter2@db:5432/app",
            "https://user:pa55@example.com",
            "mysql://root:p@ss@localhost/db",
            "HTTP_PROXY=http://u:pw@proxy:3128 other",
        ];
        let got = classify_all(&cases);
        let want: Vec<_> = cases
            .iter()
            .map(|v| (v.to_string(), Some(SecretReason::UrlPassword)))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn rule_url_password_skips_placeholders() {
        let cases = [
            "postgres://app:${DB_PASSWORD}@db/app",
            "postgres://app:$DB_PASSWORD@db/app",
            "redis://:****@cache:6379",
            "https://user:@example.com",
            "://a:b@c",
        ];
        assert_eq!(classify_all(&cases), none_for(&cases));
    }

    #[test]
    fn rule_base64_encoded() {
        let token = ghp();
        assert_eq!(
            classify_content(&base64(token.as_bytes())),
            Some(SecretReason::Base64Encoded(Box::new(SecretReason::KnownPrefix(
                "ghp_"
            ))))
        );
        let url = base64(b"postgres://app:hunter2@db/app");
        assert_eq!(
            classify_content(&url),
            Some(SecretReason::Base64Encoded(Box::new(SecretReason::UrlPassword)))
        );
        // Two layers deep still counts.
        let twice = base64(base64(token.as_bytes()).as_bytes());
        assert_eq!(
            classify_content(&twice),
            Some(SecretReason::Base64Encoded(Box::new(
                SecretReason::Base64Encoded(Box::new(SecretReason::KnownPrefix("ghp_")))
            )))
        );
    }

    #[test]
    fn rule_high_entropy() {
        assert_eq!(
            classify_content(AWS_EXAMPLE_SECRET),
            Some(SecretReason::HighEntropy { bits_per_char: 4.66 })
        );
        let random = Rng(42).string(BASE62, 32);
        assert!(matches!(
            classify_content(&format!("--password {random} --verbose")),
            Some(SecretReason::HighEntropy { .. })
        ));
    }

    /// Calibration: the share of uniformly random base62 strings the entropy rule catches, per length
    /// (misses: entropy below the threshold, or no digit / no upper case).
    #[test]
    fn rule_high_entropy_catches_random_strings() {
        let mut rng = Rng(7);
        let caught = |len: usize, rng: &mut Rng| {
            (0..1000)
                .filter(|_| classify_content(&rng.string(BASE62, len)).is_some())
                .count()
        };
        let got: Vec<(usize, usize)> = [20, 24, 32, 40, 64, 100]
            .into_iter()
            .map(|len| (len, caught(len, &mut rng)))
            .collect();
        assert_eq!(
            got,
            vec![(20, 964), (24, 981), (32, 994), (40, 997), (64, 996), (100, 1000)]
        );
    }

    #[test]
    fn entropy_threshold_values() {
        let got: Vec<String> = [20, 32, 40, 60, 1000]
            .into_iter()
            .map(|n| format!("{:.2}", entropy_threshold(n)))
            .collect();
        assert_eq!(got, vec!["3.64", "4.15", "4.39", "4.83", "4.85"]);
    }

    // ---------------------------------------------------------------------------------------------
    // The name rule
    // ---------------------------------------------------------------------------------------------

    #[test]
    fn rule_secret_name() {
        let names = [
            "GITHUB_TOKEN",
            "my_secret",
            "DB_PASSWORD",
            "PGPASSWD",
            "OPENAI_API_KEY",
            "X_API_KEY_FILE",
            "AWS_CREDENTIALS",
            "GPG_PRIVATE",
            "SIGNING_KEY",
            "github_token",
        ];
        let got: Vec<_> = names.iter().map(|n| (*n, classify(n, "hunter2"))).collect();
        let want: Vec<_> = names
            .iter()
            .map(|n| (*n, Some(SecretReason::SecretName)))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn rule_secret_name_ignores_trivial_values() {
        let values = ["", "  ", "0", "1", "true", "FALSE", "yes", "No", "on", "off"];
        let got: Vec<_> = values
            .iter()
            .map(|v| classify("TOKENIZERS_PARALLELISM", v))
            .collect();
        assert_eq!(got, vec![None; values.len()]);
    }

    #[test]
    fn rule_secret_name_needs_a_secret_word() {
        let names = ["KEYBOARD", "MONKEY", "KEY", "SSH_AUTH_SOCK", "EDITOR", "AUTHOR"];
        let got: Vec<_> = names.iter().map(|n| classify(n, "hunter2")).collect();
        assert_eq!(got, vec![None; names.len()]);
    }

    #[test]
    fn content_reason_wins_over_name() {
        assert_eq!(
            classify("GITHUB_TOKEN", &ghp()),
            Some(SecretReason::KnownPrefix("ghp_"))
        );
    }

    // ---------------------------------------------------------------------------------------------
    // False positives, one test each
    // ---------------------------------------------------------------------------------------------

    #[test]
    fn not_flagged_absolute_paths() {
        let cases = [
            "/usr/local/bin:/usr/bin",
            "/usr/local/bin:/usr/bin:/bin:/home/alice/.cargo/bin:/home/alice/.local/bin",
            "/home/alice/src/SomeProject2/target/debug/deps",
            "/Users/JohnSmith/Projects/MyApplication2/src/main",
        ];
        assert_eq!(classify_all(&cases), none_for(&cases));
    }

    #[test]
    fn not_flagged_uuids() {
        let cases = [
            "550e8400-e29b-41d4-a716-446655440000",
            "550E8400-E29B-41D4-A716-446655440000",
        ];
        assert_eq!(classify_all(&cases), none_for(&cases));
    }

    #[test]
    fn not_flagged_git_shas() {
        let cases = [
            "da39a3ee5e6b4b0d3255bfef95601890afd80709",
            "DA39A3EE5E6B4B0D3255BFEF95601890AFD80709",
            "da39a3e",
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        ];
        assert_eq!(classify_all(&cases), none_for(&cases));
    }

    #[test]
    fn not_flagged_base64_of_english() {
        let cases: &[&str] = &[
            "aGVsbG8gd29ybGQgdGhpcyBpcyBhIHRlc3Q=",
            "TG9yZW0gaXBzdW0gZG9sb3Igc2l0IGFtZXQsIGNvbnNlY3RldHVyIGFkaXBpc2NpbmcgZWxpdA==",
            &base64(b"The quick brown fox jumps over the lazy dog, again and again."),
        ];
        assert_eq!(cases[0], base64(b"hello world this is a test"));
        assert_eq!(classify_all(cases), none_for(cases));
    }

    #[test]
    fn not_flagged_semver() {
        let cases = ["1.2.3", "1.2.3-beta.1+build.20240101", "v0.14.0-rc.2"];
        assert_eq!(classify_all(&cases), none_for(&cases));
    }

    #[test]
    fn not_flagged_urls_without_password() {
        let cases = [
            "https://github.com/rust-lang/rust.git",
            "https://user@example.com/path?query=1#frag",
            "ssh://git@github.com/SomeOrg/SomeRepo2.git",
            "https://registry.npmjs.org/",
            "http://[::1]:8080/health",
        ];
        assert_eq!(classify_all(&cases), none_for(&cases));
    }

    #[test]
    fn not_flagged_ls_colors() {
        let cases = [concat!(
            "rs=0:di=01;34:ln=01;36:mh=00:pi=40;33:so=01;35:do=01;35:bd=40;33;01:cd=40;33;01:",
            "or=40;31;01:mi=00:su=37;41:sg=30;43:ca=00:tw=30;42:ow=34;42:st=37;44:ex=01;32:",
            "*.tar=01;31:*.tgz=01;31:*.arc=01;31:*.jpg=01;35:*.mp3=00;36"
        )];
        assert_eq!(classify_all(&cases), none_for(&cases));
    }

    #[test]
    fn not_flagged_locale_names() {
        let cases = ["en_US.UTF-8", "C.UTF-8", "de_DE@euro", "sk_SK.UTF-8", "POSIX"];
        assert_eq!(classify_all(&cases), none_for(&cases));
    }

    #[test]
    fn not_flagged_term_values() {
        let cases = [
            "xterm-256color",
            "tmux-256color",
            "xterm-kitty",
            "screen.xterm-256color",
        ];
        assert_eq!(classify_all(&cases), none_for(&cases));
    }

    #[test]
    fn not_flagged_editor() {
        assert_eq!(classify("EDITOR", "vim"), None);
        assert_eq!(classify("VISUAL", "code --wait"), None);
    }

    #[test]
    fn not_flagged_long_low_entropy_strings() {
        let a64 = "a".repeat(64);
        let abc = "abcABC123".repeat(8);
        let cases = [
            a64.as_str(),
            abc.as_str(),
            "Password1234Password1234Password1234",
            "ThisIsALongCamelCaseIdentifierName2",
        ];
        assert_eq!(classify_all(&cases), none_for(&cases));
    }

    #[test]
    fn not_flagged_nix_store_paths() {
        let cases = [
            "/nix/store/0c4ixsfw8v5a3bmj2bhmg0m3dh3szc5r-coreutils-9.5/bin",
            "0c4ixsfw8v5a3bmj2bhmg0m3dh3szc5r",
        ];
        assert_eq!(classify_all(&cases), none_for(&cases));
    }

    #[test]
    fn not_flagged_ssh_auth_sock() {
        assert_eq!(classify("SSH_AUTH_SOCK", "/run/user/1000/ssh-agent.socket"), None);
        assert_eq!(
            classify("SSH_AUTH_SOCK", "/tmp/ssh-XXXXa1B2c3D4/agent.5678"),
            None
        );
    }

    #[test]
    fn not_flagged_session_plumbing() {
        let cases = [
            "unix:path=/run/user/1000/bus,guid=3f2a8b1c9d4e5f60718293a4b5c6d7e8",
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko)",
            "-Xmx2048m -XX:+UseG1GC -Dfile.encoding=UTF-8",
        ];
        assert_eq!(classify_all(&cases), none_for(&cases));
    }

    // ---------------------------------------------------------------------------------------------
    // Masking
    // ---------------------------------------------------------------------------------------------

    #[test]
    fn mask_exact() {
        let got: Vec<String> = [
            ghp(),
            sk_ant(),
            fake(16, "AKIA", UPPER_ALNUM, 16),
            "hello".to_string(),
            String::new(),
            "abcdefghijk".to_string(),
            "abcdefghijkl".to_string(),
            "abcdefghijklmnopqrs".to_string(),
            "abcdefghijklmnopqrst".to_string(),
            "ghp_short".to_string(),
            format!("Bearer {}", ghp()),
            AWS_EXAMPLE_SECRET.to_string(),
            "éééééééééééé".to_string(),
        ]
        .iter()
        .map(|v| mask(v))
        .collect();
        assert_eq!(
            got,
            vec![
                "ghp_…(40)",
                "sk-ant-…(108)",
                "AKIA…(20)",
                "…(5)",
                "…(0)",
                "…(11)",
                "ab…(12)",
                "ab…(19)",
                "abcd…(20)",
                "…(9)",
                "Bear…(47)",
                "wJal…(40)",
                "éé…(12)",
            ]
        );
    }

    // ---------------------------------------------------------------------------------------------
    // The audit as a value
    // ---------------------------------------------------------------------------------------------

    fn candidates() -> Vec<(String, String, AuditSource)> {
        [
            ("HOME", "/home/alice".to_string(), AuditSource::Corral),
            ("CORRAL_SANDBOX", Rng(9).string(BASE62, 40), AuditSource::Corral),
            ("TERM", "xterm-256color".to_string(), AuditSource::Host),
            ("GITHUB_TOKEN", ghp(), AuditSource::Host),
            (
                "AWS_SECRET_ACCESS_KEY",
                AWS_EXAMPLE_SECRET.to_string(),
                AuditSource::Host,
            ),
            (
                "DATABASE_URL",
                "postgres://app:hunter2@db/app".to_string(),
                AuditSource::ProjectFile,
            ),
            ("DB_PASSWORD", "hunter2".to_string(), AuditSource::GlobalFile),
            ("NODE_ENV", "development".to_string(), AuditSource::ProfileSet),
            ("MY_VAR", "value".to_string(), AuditSource::Flag),
            ("NPM_TOKEN", "npm-xyz-123".to_string(), AuditSource::ExtraEnv),
        ]
        .into_iter()
        .map(|(n, v, s)| (n.to_string(), v, s))
        .collect()
    }

    fn allow() -> Vec<String> {
        vec!["GITHUB_*".into(), "DB_PASSWORD".into(), "[NPM_TOKEN".into()]
    }

    fn left_out() -> Vec<String> {
        vec!["AWS_PROFILE".into(), "SSH_AUTH_SOCK".into()]
    }

    fn e(
        name: &str,
        source: AuditSource,
        masked: &str,
        flagged: Option<SecretReason>,
        decision: Decision,
    ) -> AuditEntry {
        AuditEntry {
            name: name.to_string(),
            source,
            masked: masked.to_string(),
            flagged,
            decision,
        }
    }

    #[test]
    fn audit_decides_each_candidate() {
        use AuditSource as S;
        use Decision as D;
        assert_eq!(
            audit(&candidates(), &allow(), &left_out()),
            EnvAudit {
                entries: vec![
                    e("HOME", S::Corral, "…(11)", None, D::Pass),
                    e("CORRAL_SANDBOX", S::Corral, "Nl4v…(40)", None, D::Pass),
                    e("TERM", S::Host, "xt…(14)", None, D::Pass),
                    e(
                        "GITHUB_TOKEN",
                        S::Host,
                        "ghp_…(40)",
                        Some(SecretReason::KnownPrefix("ghp_")),
                        D::AllowedByProfile
                    ),
                    e(
                        "AWS_SECRET_ACCESS_KEY",
                        S::Host,
                        "wJal…(40)",
                        Some(SecretReason::HighEntropy { bits_per_char: 4.66 }),
                        D::Withheld
                    ),
                    e(
                        "DATABASE_URL",
                        S::ProjectFile,
                        "post…(29)",
                        Some(SecretReason::UrlPassword),
                        D::Withheld
                    ),
                    e(
                        "DB_PASSWORD",
                        S::GlobalFile,
                        "…(7)",
                        Some(SecretReason::SecretName),
                        D::AllowedByProfile
                    ),
                    e("NODE_ENV", S::ProfileSet, "…(11)", None, D::Pass),
                    e("MY_VAR", S::Flag, "…(5)", None, D::Pass),
                    // "[NPM_TOKEN" is not a valid glob: it matches only that exact name.
                    e(
                        "NPM_TOKEN",
                        S::ExtraEnv,
                        "…(11)",
                        Some(SecretReason::SecretName),
                        D::Withheld
                    ),
                ],
                left_out: left_out(),
            }
        );
    }

    #[test]
    fn render_audit_exact() {
        let mut a = audit(&candidates(), &allow(), &left_out());
        // What the binary records when the user lets a withheld variable in at the prompt.
        a.entries[5].decision = Decision::AcceptedByUser;
        let want = [
        "[+] HOME                  set by corral     …(11)",
        "[+] CORRAL_SANDBOX        set by corral     Nl4v…(40)",
        "[+] TERM                  from host         xt…(14)",
        "[+] GITHUB_TOKEN          from host         ghp_…(40)  allowed by profile: secret by name and content (known prefix ghp_)",
        "[+] DATABASE_URL          from project file post…(29)  accepted by you: secret by content (URL with a password)",
        "[+] DB_PASSWORD           from global file  …(7)  allowed by profile: secret by name",
        "[+] NODE_ENV              set by profile    …(11)",
        "[+] MY_VAR                from flag         …(5)",
        "[!] AWS_SECRET_ACCESS_KEY from host         withheld: secret by name and content (high entropy, 4.66 bits/char)",
        "[!] NPM_TOKEN             from extra env    withheld: secret by name",
        "[-] AWS_PROFILE",
        "[-] SSH_AUTH_SOCK",
        "",
    ]
    .join("\n");
        assert_eq!(render_audit(&a), want);
    }

    #[test]
    fn render_audit_of_nothing_is_empty() {
        assert_eq!(render_audit(&audit(&[], &[], &[])), "");
    }

    #[test]
    fn audit_json_holds_masked_values_only() {
        let cands = candidates();
        let a = audit(&cands[2..5], &allow(), &["AWS_PROFILE".to_string()]);
        let json = serde_json::to_value(&a).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "entries": [
                    {"name": "TERM", "source": "host", "masked": "xt…(14)", "flagged": null, "decision": "pass"},
                    {
                        "name": "GITHUB_TOKEN", "source": "host", "masked": "ghp_…(40)",
                        "flagged": {"code": "known_prefix", "text": "known prefix ghp_"},
                        "decision": "allowed_by_profile"
                    },
                    {
                        "name": "AWS_SECRET_ACCESS_KEY", "source": "host", "masked": "wJal…(40)",
                        "flagged": {"code": "high_entropy", "text": "high entropy, 4.66 bits/char"},
                        "decision": "withheld"
                    },
                ],
                "left_out": ["AWS_PROFILE"],
            })
        );
        let text = json.to_string();
        for (_, v, _) in &cands[2..5] {
            assert!(!text.contains(v.as_str()), "JSON contains {v}");
        }
    }

    #[test]
    fn secret_reason_codes_are_stable() {
        let reasons = [
            SecretReason::KnownPrefix("ghp_"),
            SecretReason::Jwt,
            SecretReason::PemBlock,
            SecretReason::UrlPassword,
            SecretReason::Base64Encoded(Box::new(SecretReason::Jwt)),
            SecretReason::HighEntropy { bits_per_char: 4.5 },
            SecretReason::SecretName,
        ];
        let got: Vec<(&str, String)> = reasons.iter().map(|r| (r.code(), r.text())).collect();
        assert_eq!(
            got,
            vec![
                ("known_prefix", "known prefix ghp_".to_string()),
                ("jwt", "JSON Web Token".to_string()),
                ("pem_block", "PEM block".to_string()),
                ("url_password", "URL with a password".to_string()),
                ("base64_encoded", "base64 of: JSON Web Token".to_string()),
                ("high_entropy", "high entropy, 4.50 bits/char".to_string()),
                ("secret_name", "secret-like name".to_string()),
            ]
        );
    }

    // ---------------------------------------------------------------------------------------------
    // Properties: no value in full, ever
    // ---------------------------------------------------------------------------------------------

    fn source() -> impl Strategy<Value = AuditSource> {
        prop_oneof![
            Just(AuditSource::Host),
            Just(AuditSource::ProfileSet),
            Just(AuditSource::GlobalFile),
            Just(AuditSource::ProjectFile),
            Just(AuditSource::Flag),
            Just(AuditSource::ExtraEnv),
            Just(AuditSource::Corral),
        ]
    }

    /// Values of at least 8 characters with a lower-case letter and a digit and no space or `…`, so that
    /// none can occur by coincidence in the render's fixed text, its names (`[A-Z_]`) or a mask.
    fn value() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z][0-9][!-~]{6,60}",
            "(ghp_|sk-ant-api03-|AKIA|hf_|npm_|github_pat_)[a-z][0-9][A-Za-z0-9]{14,50}",
            "postgres://u[0-9]:[a-z][0-9][a-z0-9]{6,20}@db/app",
            "[A-Za-z0-9+/]{10,60}[a-z][0-9]",
        ]
    }

    proptest! {
        #[test]
        fn parse_env_file_never_panics(text in any::<String>()) {
            let _ = parse_env_file("p", &text);
        }

        #[test]
        fn parse_env_file_reads_back_double_quoted_values(
            vars in prop::collection::vec(("[A-Za-z_][A-Za-z0-9_]{0,12}", any::<String>()), 0..8)
        ) {
            let text: String = vars
                .iter()
                .map(|(k, v)| {
                    let v = v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
                    format!("{k}=\"{v}\"\n")
                })
                .collect();
            let want: Vec<EnvFileEntry> = vars
                .iter()
                .enumerate()
                .map(|(i, (k, v))| entry(k, v, i + 1))
                .collect();
            prop_assert_eq!(parse_env_file("p", &text).unwrap(), want);
        }

        #[test]
        fn mask_never_contains_the_value(
            v in prop_oneof![
                any::<String>(),
                "[!-~]{8,80}",
                "(ghp_|sk-ant-|sk-|AKIA|github_pat_|glpat-)[A-Za-z0-9]{0,60}",
            ]
        ) {
            prop_assume!(v.len() >= 8);
            let m = mask(&v);
            prop_assert!(!m.contains(v.as_str()), "mask({v:?}) = {m:?}");
        }

        #[test]
        fn render_never_contains_a_value(
            cands in prop::collection::vec(("[A-Z][A-Z_]{2,24}", value(), source(), any::<bool>()), 0..12),
            left in prop::collection::vec("[A-Z][A-Z_]{2,24}", 0..4),
        ) {
            let allow: Vec<String> = cands.iter().filter(|c| c.3).map(|c| c.0.clone()).collect();
            let cands: Vec<(String, String, AuditSource)> =
                cands.into_iter().map(|(n, v, s, _)| (n, v, s)).collect();
            let a = audit(&cands, &allow, &left);
            let out = render_audit(&a);
            let json = serde_json::to_string(&a).unwrap();
            for (_, v, _) in &cands {
                prop_assert!(!out.contains(v.as_str()), "render contains {v:?}:\n{out}");
                prop_assert!(!json.contains(v.as_str()), "JSON contains {v:?}:\n{json}");
            }
        }
    }
}
