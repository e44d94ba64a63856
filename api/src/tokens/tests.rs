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
