//! Unit tests of access tokens: the file format, hashing, scopes and reloading.

use super::*;

/// SHA-256 of "abc" (FIPS 180-2's example).
const ABC: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

#[test]
fn sha256_and_hex_are_the_standard_ones() {
    assert_eq!(hex(&sha256(b"abc")), ABC);
    assert_eq!(decode_hash(ABC), Some(sha256(b"abc")));
    assert_eq!(decode_hash(&ABC.to_uppercase()), None);
    assert_eq!(decode_hash(&ABC[1..]), None);
    assert_eq!(decode_hash(&format!("{}g", &ABC[1..])), None);
}

#[test]
fn a_file_gives_each_token_its_scope() {
    let text = format!(
        "# logstats tokens\n\
         \n\
         sha256:{ABC} cust_2,cust_1   # the support team\n\
         \tsha256:{} *\r\n",
        hex(&sha256(b"admin"))
    );
    let set = TokenSet::parse(text.as_bytes()).expect("a valid file");
    assert_eq!(set.len(), 2);
    let scope = set.scope_of("abc").expect("abc is known");
    assert_eq!(scope.to_string(), "cust_1,cust_2");
    assert!(scope.covers("cust_1") && scope.covers("cust_2") && !scope.covers("cust_3"));
    assert!(!scope.is_all());
    assert_eq!(set.scope_of("admin"), Some(&Scope::All));
    assert_eq!(set.scope_of("abd"), None);
    assert_eq!(set.scope_of(""), None);
    assert!(TokenSet::parse(b"").expect("empty").is_empty());
}

#[test]
fn malformed_lines_are_named_by_number_and_never_quoted() {
    let good = format!("sha256:{ABC} cust_1");
    let mut not_text = format!("{good}\n").into_bytes();
    not_text.extend_from_slice(&[0xff, 0xfe]);
    let cases: [(Vec<u8>, usize, LineError); 10] = [
        (
            format!("{good}\nsecret-token cust_1").into_bytes(),
            2,
            LineError::NoHashPrefix,
        ),
        (
            format!("#\n\nsha256:{} *", ABC.to_uppercase()).into_bytes(),
            3,
            LineError::BadHash,
        ),
        (
            format!("sha256:{} *", &ABC[..40]).into_bytes(),
            1,
            LineError::BadHash,
        ),
        (
            format!("sha256:{ABC}").into_bytes(),
            1,
            LineError::NoCustomers,
        ),
        (
            format!("sha256:{ABC}   # *").into_bytes(),
            1,
            LineError::NoCustomers,
        ),
        (
            format!("sha256:{ABC} cust_1, cust_2").into_bytes(),
            1,
            LineError::TrailingText,
        ),
        (
            format!("sha256:{ABC} cust_1,,cust_2").into_bytes(),
            1,
            LineError::Scope(ScopeError::InvalidCustomer { position: 2 }),
        ),
        (
            format!("sha256:{ABC} *,cust_2").into_bytes(),
            1,
            LineError::Scope(ScopeError::StarInList),
        ),
        (
            format!("{good}\n{good}").into_bytes(),
            2,
            LineError::Duplicate(1),
        ),
        (not_text, 2, LineError::NotText),
    ];
    for (text, line, problem) in cases {
        let result = TokenSet::parse(&text).err();
        assert_eq!(
            result,
            Some((line, problem)),
            "{}",
            String::from_utf8_lossy(&text)
        );
    }
    let error = TokenFileError::Line {
        path: "tokens".into(),
        line: 3,
        problem: LineError::BadHash,
    };
    let message = error.to_string();
    assert_eq!(
        message,
        "tokens file tokens, line 3: the hash after `sha256:` is not 64 lowercase hex digits"
    );
}

#[test]
fn scopes_parse_as_customer_ids() {
    assert_eq!(Scope::parse("*"), Ok(Scope::All));
    assert_eq!(Scope::parse(""), Err(ScopeError::Empty));
    assert_eq!(
        Scope::parse("a,b/c"),
        Err(ScopeError::InvalidCustomer { position: 2 })
    );
    let long = "x".repeat(65);
    assert_eq!(
        Scope::parse(&long),
        Err(ScopeError::InvalidCustomer { position: 1 })
    );
    let scope = Scope::parse("b.2,a-1,b.2,A_3").expect("valid ids");
    assert_eq!(scope.to_string(), "A_3,a-1,b.2");
}

#[test]
fn new_tokens_are_random_and_match_their_line() {
    let scope = Scope::parse("cust_1,cust_2").expect("valid");
    let first = new_token(&scope).expect("random bytes");
    let second = new_token(&scope).expect("random bytes");
    assert_ne!(first.token, second.token);
    assert_eq!(first.token.len(), 2 * TOKEN_BYTES);
    assert!(first.token.bytes().all(|b| b.is_ascii_hexdigit()));
    let set = TokenSet::parse(first.line.as_bytes()).expect("its line parses");
    assert_eq!(set.scope_of(&first.token), Some(&scope));
    assert_eq!(set.scope_of(&second.token), None);
    let mut out = Vec::new();
    print_new_token(&Scope::All, &mut out).expect("printed");
    let out = String::from_utf8(out).expect("text");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    let token = lines[0].strip_prefix("token: ").expect("the token first");
    let set = TokenSet::parse(lines[1].as_bytes()).expect("then its line");
    assert_eq!(set.scope_of(token), Some(&Scope::All));
}

/// A reload keeps the tokens in force unless the file looks whole: the cut-line case (a file
/// rewritten in place, read while its last line is `... cust_1` of `... cust_12`), an empty or
/// token-less file, and a malformed one are all refused, with the reason.
#[test]
fn a_reload_takes_only_a_whole_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("tokens");
    let twelve = format!("sha256:{} cust_12\n", hex(&sha256(b"twelve")));
    let admin = format!("sha256:{} *\n", hex(&sha256(b"admin")));
    std::fs::write(&path, format!("{admin}{twelve}")).expect("write");
    let tokens = Tokens::load(&path).expect("loads");
    assert_eq!(tokens.current().len(), 2);
    let in_force = |tokens: &Tokens| {
        let set = tokens.current();
        (
            set.scope_of("admin").map(Scope::to_string),
            set.scope_of("twelve").map(Scope::to_string),
        )
    };
    let before = (Some("*".to_string()), Some("cust_12".to_string()));
    let cut = format!("{admin}{}", twelve.trim_end().trim_end_matches('2'));
    for (text, problem) in [
        (cut.as_str(), "does not end with a newline"),
        ("", "is empty"),
        ("# all tokens revoked\n", "holds no token"),
    ] {
        std::fs::write(&path, text).expect("write");
        let error = tokens.reload().expect_err(problem).to_string();
        assert!(error.contains(problem), "{error}");
        assert!(error.contains("rename it over the old one"), "{error}");
        assert!(!error.contains("sha256:"), "no hash is shown: {error}");
        assert_eq!(in_force(&tokens), before, "{problem}");
    }
    std::fs::write(&path, format!("{admin}not a line\n")).expect("write");
    let error = tokens.reload().expect_err("malformed").to_string();
    assert!(error.contains("line 2"), "{error}");
    assert_eq!(in_force(&tokens), before);
    // A whole file replaces the tokens in force.
    std::fs::write(&path, &twelve).expect("write");
    assert_eq!(tokens.reload().expect("whole"), 1);
    assert_eq!(in_force(&tokens), (None, Some("cust_12".to_string())));
}

/// Tokens are found by hash: many lines load (duplicates found through the same map) and each
/// one is found.
#[test]
fn many_tokens_load_and_are_each_found() {
    let mut text = String::new();
    for i in 0..20_000 {
        text.push_str(&format!(
            "sha256:{} cust_{i}\n",
            hex(&sha256(format!("t{i}").as_bytes()))
        ));
    }
    let set = TokenSet::parse(text.as_bytes()).expect("valid");
    assert_eq!(set.len(), 20_000);
    for i in (0..20_000).step_by(997) {
        let scope = set.scope_of(&format!("t{i}")).expect("known");
        assert!(scope.covers(&format!("cust_{i}")));
    }
    text.push_str(&format!("sha256:{} *\n", hex(&sha256(b"t7"))));
    assert_eq!(
        TokenSet::parse(text.as_bytes()).map(|_| ()),
        Err((20_001, LineError::Duplicate(8)))
    );
}
