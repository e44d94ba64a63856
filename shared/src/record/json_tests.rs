//! Unit tests of JSON lines: each field's forms, nested fields, the rejects, and durations
//! against the native parser.

use super::*;
use crate::record::{days_from_civil, parse_line, InputFormat, LineParser, MAX_DURATION_US};

fn fields(paths: &[(JsonField, &str)], unit: DurationUnit) -> JsonFields {
    JsonFields::new(
        |field| {
            paths
                .iter()
                .find(|(f, _)| *f == field)
                .map_or_else(|| field.default_name().to_string(), |(_, p)| p.to_string())
        },
        unit,
    )
    .expect("usable fields")
}

fn ok<'a>(fields: &JsonFields, line: &'a str) -> Record<'a> {
    fields
        .parse(line.as_bytes())
        .unwrap_or_else(|e| panic!("{line} rejected: {e}"))
}

fn err(fields: &JsonFields, line: &str) -> RejectReason {
    match fields.parse(line.as_bytes()) {
        Ok(r) => panic!("{line} accepted as {r:?}"),
        Err(e) => e,
    }
}

const NATIVE: &str = "2024-10-10 12:50:18 cust_14 /api/v1/resource3 401 0.847";

#[test]
fn a_json_line_is_the_same_record_as_its_native_line() {
    let native = parse_line(NATIVE.as_bytes()).expect("native");
    let json = JsonFields::default();
    for line in [
        r#"{"timestamp":"2024-10-10T12:50:18Z","customer_id":"cust_14","path":"/api/v1/resource3","status":401,"duration":0.847}"#,
        r#"{"duration":"0.847","status":"401","path":"/api/v1/resource3","customer_id":"cust_14","timestamp":"2024-10-10T14:50:18.999+02:00"}"#,
        r#" { "timestamp" : 1728564618.9 , "customer_id" : "cust_14", "path": "/api/v1/resource3", "status": 401, "duration": 847e-3, "x": [1, {"y": null}] }"#,
        r#"{"timestamp":"1728564618","customer\u005fid":"cust_14","path":"\/api\/v1\/resource3","status":401,"duration":0.8470,"timestamp_2":true}"#,
        "{\"timestamp\":\"2024-10-10t12:50:18z\",\"customer_id\":\"cust_14\",\"path\":\"/p\",\"status\":401,\"duration\":0.847}\r",
    ] {
        assert_eq!(ok(&json, line), native, "{line}");
    }
}

#[test]
fn offsets_move_the_event_to_its_utc_day() {
    let json = JsonFields::default();
    let line = |ts: &str| {
        format!(r#"{{"timestamp":"{ts}","customer_id":"c","path":"/p","status":200,"duration":1}}"#)
    };
    let at = |ts: &str| {
        let text = line(ts);
        let r = ok(&json, &text);
        (r.day, r.second_of_day)
    };
    assert_eq!(
        at("2024-10-10T00:30:00+02:00"),
        (days_from_civil(2024, 10, 9), 22 * 3600 + 30 * 60)
    );
    assert_eq!(
        at("2024-12-31T23:30:00-01:00"),
        (days_from_civil(2025, 1, 1), 30 * 60)
    );
    assert_eq!(
        at("2024-10-10 12:00:00.123456789Z"),
        (days_from_civil(2024, 10, 10), 43_200)
    );
    for bad in [
        "2024-10-10T12:00:60Z",
        "2024-10-10T12:00:00",
        "2024-10-10T12:00:00+2:00",
        "2024-10-10T12:00:00+02:60",
        "2024-10-10T12:00:00.Z",
        "2024-02-30T12:00:00Z",
        "9999-12-31T23:30:00-01:00",
        "0001-01-01T00:30:00+01:00",
        "yesterday",
    ] {
        assert_eq!(
            err(&json, &line(bad)),
            RejectReason::InvalidTimestamp,
            "{bad}"
        );
    }
    let unix = |ts: &str| {
        format!(r#"{{"timestamp":{ts},"customer_id":"c","path":"/p","status":200,"duration":1}}"#)
    };
    assert_eq!(ok(&json, &unix("0")).day, 0);
    assert_eq!(ok(&json, &unix("86399.999")).second_of_day, 86_399);
    assert_eq!(
        ok(&json, &unix("253402300799")).day,
        days_from_civil(9999, 12, 31)
    );
    for bad in [
        "-1",
        "1e9",
        "253402300800",
        "\"1.\"",
        "\"x\"",
        "true",
        "null",
        "{}",
    ] {
        let reason = err(&json, &unix(bad));
        let expected = match bad {
            "null" => RejectReason::MissingField(JsonField::Timestamp),
            _ => RejectReason::InvalidTimestamp,
        };
        assert_eq!(reason, expected, "{bad}");
    }
}

/// Caddy's shape: the customer in a header's first value, the path in `request.uri`, the time
/// as Unix seconds in `ts`.
#[test]
fn nested_fields_and_array_elements_are_found() {
    let caddy = fields(
        &[
            (JsonField::Timestamp, "ts"),
            (JsonField::CustomerId, "request.headers.X-Customer-Id.0"),
            (JsonField::Path, "request.uri"),
        ],
        DurationUnit::S,
    );
    let line = r#"{"level":"info","ts":1728564618.5241024,"logger":"http.log.access","msg":"handled request","request":{"remote_ip":"127.0.0.1","proto":"HTTP/1.1","method":"GET","host":"api","uri":"/api/v1/resource3?x=1","headers":{"User-Agent":["curl/8.5.0"],"X-Customer-Id":["cust_14","other"],"Accept":["*/*"]}},"bytes_read":0,"duration":0.000929675,"size":10,"status":401,"resp_headers":{"Server":["Caddy"]}}"#;
    let r = ok(&caddy, line);
    assert_eq!(r.customer, b"cust_14");
    assert_eq!(r.event_time(), 1_728_564_618);
    assert_eq!(r.latency_us, 930);
    assert_eq!(r.status, 401);
    // The second element, an element past the end, or a path through a scalar: not found.
    let second = fields(
        &[
            (JsonField::CustomerId, "request.headers.X-Customer-Id.1"),
            (JsonField::Timestamp, "ts"),
            (JsonField::Path, "request.uri"),
        ],
        DurationUnit::S,
    );
    assert_eq!(ok(&second, line).customer, b"other");
    let past = fields(
        &[
            (JsonField::CustomerId, "request.headers.X-Customer-Id.2"),
            (JsonField::Timestamp, "ts"),
            (JsonField::Path, "request.uri"),
        ],
        DurationUnit::S,
    );
    assert_eq!(
        err(&past, line),
        RejectReason::MissingField(JsonField::CustomerId)
    );
    let through = fields(
        &[
            (JsonField::CustomerId, "level.x"),
            (JsonField::Timestamp, "ts"),
            (JsonField::Path, "request.uri"),
        ],
        DurationUnit::S,
    );
    assert_eq!(
        err(&through, line),
        RejectReason::MissingField(JsonField::CustomerId)
    );
}

#[test]
fn unusable_field_paths_are_refused() {
    let with = |customer: &str| {
        JsonFields::new(
            |f| match f {
                JsonField::CustomerId => customer.to_string(),
                JsonField::Path => "request.uri".to_string(),
                other => other.default_name().to_string(),
            },
            DurationUnit::S,
        )
    };
    assert!(with("request.headers.X-Customer-Id.0").is_ok());
    assert!(matches!(with(""), Err(FieldPathError::Empty { .. })));
    assert!(matches!(with("a..b"), Err(FieldPathError::Empty { .. })));
    assert!(matches!(
        with("request"),
        Err(FieldPathError::Overlap { .. })
    ));
    assert!(matches!(
        with("request.uri.x"),
        Err(FieldPathError::Overlap { .. })
    ));
    assert!(matches!(
        with("status"),
        Err(FieldPathError::Overlap { .. })
    ));
}

#[test]
fn bad_lines_are_rejected_with_their_reason() {
    let json = JsonFields::default();
    let good = r#""timestamp":"2024-10-10T12:50:18Z","customer_id":"c","path":"/p","status":200"#;
    let cases: &[(&str, RejectReason)] = &[
        ("{", RejectReason::NotJsonObject),
        ("[1,2]", RejectReason::NotJsonObject),
        (r#"{"a":1} {"b":2}"#, RejectReason::NotJsonObject),
        (r#"{"a":1,}"#, RejectReason::NotJsonObject),
        (
            r#"{"path":"/p"}"#,
            RejectReason::MissingField(JsonField::Timestamp),
        ),
        (
            r#"{"timestamp":1,"customer_id":"c","path":"/p","status":200}"#,
            RejectReason::MissingField(JsonField::Duration),
        ),
        (
            r#"{"timestamp":1,"customer_id":null,"path":"/p","status":200,"duration":1}"#,
            RejectReason::MissingField(JsonField::CustomerId),
        ),
        (
            r#"{"timestamp":1,"customer_id":"c","path":"","status":200,"duration":1}"#,
            RejectReason::MissingField(JsonField::Path),
        ),
        (
            r#"{"timestamp":1,"customer_id":"c","path":7,"status":200,"duration":1}"#,
            RejectReason::MissingField(JsonField::Path),
        ),
        (
            r#"{"timestamp":1,"customer_id":"a b","path":"/p","status":200,"duration":1}"#,
            RejectReason::InvalidCustomer,
        ),
        (
            r#"{"timestamp":1,"customer_id":"\u0063","path":"/p","status":200,"duration":1}"#,
            RejectReason::InvalidCustomer,
        ),
        (
            r#"{"timestamp":1,"customer_id":"..","path":"/p","status":200,"duration":1}"#,
            RejectReason::InvalidCustomer,
        ),
        (
            r#"{"timestamp":1,"customer_id":["c"],"path":"/p","status":200,"duration":1}"#,
            RejectReason::InvalidCustomer,
        ),
        (
            r#"{"timestamp":1,"customer_id":"c","path":"/p","status":200.0,"duration":1}"#,
            RejectReason::InvalidStatus,
        ),
        (
            r#"{"timestamp":1,"customer_id":"c","path":"/p","status":99,"duration":1}"#,
            RejectReason::InvalidStatus,
        ),
        (
            r#"{"timestamp":1,"customer_id":"c","path":"/p","status":"600","duration":1}"#,
            RejectReason::InvalidStatus,
        ),
        (
            r#"{"timestamp":1,"customer_id":"c","path":"/p","status":200,"duration":-1}"#,
            RejectReason::InvalidDuration,
        ),
        (
            r#"{"timestamp":1,"customer_id":"c","path":"/p","status":200,"duration":"1s"}"#,
            RejectReason::InvalidDuration,
        ),
        (
            r#"{"timestamp":1,"customer_id":"c","path":"/p","status":200,"duration":true}"#,
            RejectReason::InvalidDuration,
        ),
        (
            r#"{"timestamp":1,"customer_id":"c","path":"/p","status":200,"duration":86400.0000005}"#,
            RejectReason::DurationTooLong,
        ),
        (
            r#"{"timestamp":1,"customer_id":"c","path":"/p","status":200,"duration":1e10}"#,
            RejectReason::InvalidDuration,
        ),
        (
            r#"{"timestamp":1,"customer_id":"c","path":"/p","status":200,"duration":8.64000001e4}"#,
            RejectReason::DurationTooLong,
        ),
    ];
    for (line, reason) in cases {
        assert_eq!(err(&json, line), *reason, "{line}");
    }
    assert_eq!(
        json.parse(b"{\"a\":\"\xff\"}"),
        Err(RejectReason::InvalidUtf8)
    );
    let long = format!(
        r#"{{{good},"duration":1,"pad":"{}"}}"#,
        "x".repeat(MAX_LINE_BYTES)
    );
    assert_eq!(err(&json, &long), RejectReason::TooLong);
    // A number as the customer id is its text; the last of repeated keys counts.
    let numeric =
        r#"{"timestamp":1,"customer_id":12345,"path":"/p","status":200,"duration":1,"duration":2}"#;
    let r = ok(&json, numeric);
    assert_eq!((r.customer, r.latency_us), (&b"12345"[..], 2_000_000));
}

#[test]
fn durations_in_every_unit_match_the_native_parser() {
    let line = |unit: DurationUnit, duration: &str| {
        let json = fields(&[], unit);
        let text = format!(
            r#"{{"timestamp":1,"customer_id":"c","path":"/p","status":200,"duration":{duration}}}"#
        );
        json.parse(text.as_bytes()).map(|r| r.latency_us)
    };
    assert_eq!(line(DurationUnit::Ms, "847"), Ok(847_000));
    assert_eq!(line(DurationUnit::Ms, "0.0015"), Ok(2));
    assert_eq!(line(DurationUnit::Ms, "0.0014"), Ok(1));
    assert_eq!(line(DurationUnit::Us, "847000"), Ok(847_000));
    assert_eq!(line(DurationUnit::Ns, "929675"), Ok(930));
    assert_eq!(line(DurationUnit::Ns, "499"), Ok(0));
    assert_eq!(line(DurationUnit::Ns, "500"), Ok(1));
    assert_eq!(
        line(DurationUnit::Ns, "86400000000000"),
        Ok(MAX_DURATION_US)
    );
    // 86400.000000001 s rounds to the one-day limit, 86400.0000005 s past it.
    assert_eq!(
        line(DurationUnit::Ns, "86400000000001"),
        Ok(MAX_DURATION_US)
    );
    assert_eq!(
        line(DurationUnit::Ns, "86400000000500"),
        Err(RejectReason::DurationTooLong)
    );
    assert_eq!(line(DurationUnit::S, "1E-7"), Ok(0));
    assert_eq!(line(DurationUnit::S, "5e-7"), Ok(1));
    assert_eq!(line(DurationUnit::S, "1.5e+3"), Ok(1_500_000_000));
    assert_eq!(line(DurationUnit::S, "0e999999"), Ok(0));
    assert_eq!(
        line(DurationUnit::S, "1e999999"),
        Err(RejectReason::InvalidDuration)
    );
    assert_eq!(
        line(DurationUnit::S, "\"1e\""),
        Err(RejectReason::InvalidDuration)
    );
    assert_eq!(
        line(DurationUnit::Ms, "\"-0\""),
        Err(RejectReason::InvalidDuration)
    );

    // Random decimals: the same value in s, ms, us and ns gives what the native parser gives
    // for it in seconds, rejects included.
    let mut next = crate::xorshift(0x5eed_0fd0);
    for _ in 0..50_000 {
        let whole_digits = (next() % 11) as usize;
        let fraction_digits = (next() % 12) as usize;
        let mut digits: Vec<u8> = (0..whole_digits + fraction_digits)
            .map(|_| b'0' + (next() % 10) as u8)
            .collect();
        if whole_digits > 1 && digits[0] == b'0' {
            digits[0] = b'1'; // the native parser counts leading zeros as digits
        }
        if digits.is_empty() {
            continue;
        }
        let seconds = with_point(&digits, whole_digits);
        let native = parse_duration_us(&seconds).ok_or_else(|| too_long_or_invalid(&seconds));
        let text = String::from_utf8_lossy(&seconds).into_owned();
        assert_eq!(shifted_duration_us(&seconds, 0), native, "{text} s");
        for (decimals, unit) in [
            (3, DurationUnit::Ms),
            (6, DurationUnit::Us),
            (9, DurationUnit::Ns),
        ] {
            let mut scaled = digits.clone();
            let point = whole_digits + decimals;
            scaled.resize(scaled.len().max(point), b'0');
            let scaled = with_point(&scaled, point);
            assert_eq!(duration_us(&scaled, unit), native, "{text} s as {unit:?}");
        }
    }
}

/// `digits` with a point after the first `whole` of them (none when all are whole).
fn with_point(digits: &[u8], whole: usize) -> Vec<u8> {
    let mut text = digits[..whole].to_vec();
    if whole < digits.len() {
        text.push(b'.');
        text.extend_from_slice(&digits[whole..]);
    }
    text
}

#[test]
fn auto_reads_each_line_by_its_first_byte() {
    let auto = LineParser::new(InputFormat::Auto, JsonFields::default());
    let json = r#"  {"timestamp":"2024-10-10T12:50:18Z","customer_id":"cust_14","path":"/api/v1/resource3","status":401,"duration":0.847}"#;
    let native = parse_line(NATIVE.as_bytes());
    assert_eq!(auto.parse(NATIVE.as_bytes()), native);
    assert_eq!(auto.parse(json.as_bytes()), native);
    assert_eq!(auto.parse(b"{oops"), Err(RejectReason::NotJsonObject));
    assert_eq!(auto.parse(b"oops"), Err(RejectReason::FieldCount));
    let only_native = LineParser::new(InputFormat::Native, JsonFields::default());
    assert_eq!(
        only_native.parse(json.as_bytes()),
        Err(RejectReason::FieldCount)
    );
    let only_json = LineParser::new(InputFormat::Json, JsonFields::default());
    assert_eq!(
        only_json.parse(NATIVE.as_bytes()),
        Err(RejectReason::NotJsonObject)
    );
}
