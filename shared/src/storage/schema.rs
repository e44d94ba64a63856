// @generated-style: kept identical to what `diesel print-schema` prints for migrations/postgres.

diesel::table! {
    daily_stats (customer_id, day) {
        customer_id -> Text,
        day -> Date,
        successful -> BigInt,
        failed -> BigInt,
        latency_sum_us -> BigInt,
        latency_min_us -> BigInt,
        latency_max_us -> BigInt,
        latencies -> Binary,
        version -> BigInt,
    }
}

diesel::table! {
    source_offsets (source) {
        source -> Text,
        fingerprint -> Binary,
        byte_offset -> BigInt,
        line_count -> BigInt,
        owner -> Nullable<Text>,
        lease_until -> Nullable<BigInt>,
    }
}

diesel::table! {
    customer_versions (customer_id) {
        customer_id -> Text,
        version -> BigInt,
    }
}

diesel::table! {
    ingest_watermark (id) {
        id -> Integer,
        event_time -> BigInt,
    }
}

diesel::table! {
    fleet_days (day) {
        day -> Date,
        successful -> BigInt,
        failed -> BigInt,
        latency_sum_us -> BigInt,
        latency_min_us -> BigInt,
        latency_max_us -> BigInt,
        latencies -> Binary,
        version -> BigInt,
    }
}

diesel::table! {
    fleet_days_pending (id) {
        id -> Integer,
    }
}

diesel::table! {
    prune_horizon (id) {
        id -> Integer,
        first_day -> Nullable<Date>,
    }
}

diesel::table! {
    push_batches (batch_key) {
        batch_key -> Text,
        accepted -> BigInt,
        rejected -> BigInt,
        late -> BigInt,
        committed_at -> BigInt,
    }
}

diesel::allow_tables_to_appear_in_same_query!(
    customer_versions,
    daily_stats,
    fleet_days,
    fleet_days_pending,
    ingest_watermark,
    prune_horizon,
    push_batches,
    source_offsets,
);
