//! Unit tests of the request inputs: customer ids, date ranges, percentile lists and list pages,
//! what each refuses and the error text it echoes.

use super::*;

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("valid test date")
}

#[test]
fn customer_ids_follow_the_ingest_rules() {
    for good in ["cust_22", "a", "A.b-c_9", &"x".repeat(64)] {
        assert_eq!(
            CustomerId::parse(good.to_string()).map(|c| c.0),
            Ok(good.to_string())
        );
    }
    for bad in ["", "cust 1", "cust/1", "cust!", "é", &"x".repeat(65)] {
        assert_eq!(
            CustomerId::parse(bad.to_string()),
            Err(ValidationError::InvalidCustomerId),
            "{bad:?}"
        );
    }
}

#[test]
fn parses_inclusive_ranges() {
    assert_eq!(
        RequestedRange::parse(Some("2024-10-10"), None),
        Ok(RequestedRange {
            from: date(2024, 10, 10),
            to: None
        })
    );
    assert_eq!(
        RequestedRange::parse(Some("2024-02-29"), Some("2024-02-29")),
        Ok(RequestedRange {
            from: date(2024, 2, 29),
            to: Some(date(2024, 2, 29))
        })
    );
}

#[test]
fn refuses_anything_but_real_dates() {
    assert_eq!(
        RequestedRange::parse(None, Some("2024-10-10")),
        Err(ValidationError::MissingFrom)
    );
    for bad in [
        "",
        "2024-13-01",
        "2023-02-29",
        "2024-1-05",
        "2024-01-5",
        "24-01-05",
        "2024/01/05",
        "2024-01-05T00:00",
        " 2024-01-05",
        "0000-01-01",
        "+2024-01-05",
    ] {
        assert_eq!(
            RequestedRange::parse(Some(bad), None),
            Err(ValidationError::InvalidDate {
                parameter: "from",
                value: bad.to_string()
            }),
            "{bad:?}"
        );
        assert_eq!(
            RequestedRange::parse(Some("2024-01-01"), Some(bad)),
            Err(ValidationError::InvalidDate {
                parameter: "to",
                value: bad.to_string()
            }),
            "{bad:?}"
        );
    }
}

#[test]
fn percentiles_are_numbers_from_0_to_100_keyed_as_printed() {
    let keys = |raw| {
        PercentileList::parse(Some(raw))
            .map(|list| list.0.into_iter().map(|(k, _)| k).collect::<Vec<_>>())
    };
    assert_eq!(
        keys("90,95,99.9"),
        Ok(vec!["90".into(), "95".into(), "99.9".into()])
    );
    assert_eq!(
        keys("99.90,0,100,90,90.0"),
        Ok(vec!["99.9".into(), "0".into(), "100".into(), "90".into()])
    );
    assert_eq!(keys("0.000001"), Ok(vec!["0.000001".into()]));
    assert_eq!(PercentileList::parse(None), Ok(PercentileList::default()));
    for bad in [
        "",
        ",",
        "90,",
        "100.1",
        "101",
        "-1",
        "1e2",
        " 90",
        "90 ",
        "nan",
        "inf",
        "0.0000001",
        "1000",
        ".5",
        "5.",
        "+5",
    ] {
        assert!(PercentileList::parse(Some(bad)).is_err(), "{bad:?}");
    }
    let many: Vec<String> = (1..=17).map(|p| p.to_string()).collect();
    assert!(PercentileList::parse(Some(&many.join(","))).is_err());
    assert!(PercentileList::parse(Some(&many[..16].join(","))).is_ok());
}

#[test]
fn list_pages_are_bounded() {
    let page = ListPage::parse(None, None, None, None).expect("defaults");
    assert_eq!(
        page,
        ListPage {
            sort: SortField::CustomerId,
            descending: false,
            limit: 100,
            offset: 0
        }
    );
    let page = ListPage::parse(
        Some("failed_requests"),
        Some("desc"),
        Some("1000"),
        Some("99000"),
    )
    .expect("deepest page");
    assert_eq!(
        (page.sort, page.descending, page.limit, page.offset),
        (SortField::FailedRequests, true, 1000, 99000)
    );
    for name in SortField::NAMES {
        assert_eq!(SortField::parse(name).map(SortField::name), Ok(name));
    }
    for (sort, order, limit, offset) in [
        (Some("nope"), None, None, None),
        (Some("Uptime"), None, None, None),
        (None, Some("up"), None, None),
        (None, None, Some("0"), None),
        (None, None, Some("1001"), None),
        (None, None, Some("-1"), None),
        (None, None, Some("1.5"), None),
        (None, None, Some(""), None),
        (None, None, None, Some("-1")),
        (None, None, None, Some("99001")),
        (None, None, None, Some("99999999999999999999999")),
    ] {
        assert!(
            ListPage::parse(sort, order, limit, offset).is_err(),
            "{sort:?} {order:?} {limit:?} {offset:?}"
        );
    }
}

#[test]
fn refuses_to_before_from() {
    let error =
        RequestedRange::parse(Some("2024-10-10"), Some("2024-10-09")).expect_err("to before from");
    assert_eq!(
        error.to_string(),
        "`to` (2024-10-09) is before `from` (2024-10-10)"
    );
}

#[test]
fn echoes_only_a_short_prefix_of_a_bad_value() {
    let long = "9".repeat(10_000);
    let error = RequestedRange::parse(Some(&long), None).expect_err("not a date");
    assert_eq!(
        error.to_string(),
        format!(
            "invalid `from` date \"{}\": expected a real date as YYYY-MM-DD",
            "9".repeat(32)
        )
    );
}

#[test]
fn iso_dates_match_chrono() {
    let mut date = date(1, 1, 1);
    let last = NaiveDate::from_ymd_opt(9999, 12, 31).expect("valid date");
    let mut checked = 0;
    while date <= last {
        let mut out = Vec::new();
        iso_date(&date, &mut serde_json::Serializer::new(&mut out)).expect("serializes");
        assert_eq!(out, format!("\"{}\"", date.format("%Y-%m-%d")).into_bytes());
        date = date + chrono::Days::new(97);
        checked += 1;
    }
    assert!(checked > 30_000);
}
