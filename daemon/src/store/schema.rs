//! The diesel schema, written to match `migrations/sqlite` and `migrations/postgres` alike.
//!
//! Only SQL types both backends share are used (text, integers, double, bool, naive timestamp),
//! so one schema and one set of queries serve SQLite and PostgreSQL.

diesel::table! {
    pods (alias) {
        alias -> Text,
        provider -> Text,
        identity -> Text,
        config -> Text,
        token -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        client_key -> Nullable<Text>,
    }
}

diesel::table! {
    pod_tags (alias, tag) {
        alias -> Text,
        tag -> Text,
    }
}

diesel::table! {
    commands (id) {
        id -> BigInt,
        alias -> Text,
        pod_label -> Text,
        command -> Text,
        status -> Text,
        exit_code -> Nullable<Integer>,
        stdout -> Text,
        stderr -> Text,
        error -> Nullable<Text>,
        truncated -> Bool,
        started_at -> Timestamp,
        finished_at -> Nullable<Timestamp>,
        duration_ms -> Nullable<Double>,
        actor -> Nullable<Text>,
        session_restarted -> Bool,
        uid -> Nullable<Text>,
        job_id -> Nullable<BigInt>,
        set_name -> Nullable<Text>,
        pod_name -> Nullable<Text>,
    }
}

diesel::table! {
    jobs (id) {
        id -> BigInt,
        command -> Text,
        actor -> Text,
        targets -> Text,
        options -> Text,
        created_at -> Timestamp,
        finished_at -> Nullable<Timestamp>,
        total -> BigInt,
        counts -> Text,
        stopped -> Nullable<Text>,
    }
}

diesel::table! {
    pod_sets (name) {
        name -> Text,
        cluster -> Text,
        namespace -> Text,
        selector -> Text,
        container -> Nullable<Text>,
        created_at -> Timestamp,
        actor -> Text,
    }
}

diesel::table! {
    audit_events (id) {
        id -> BigInt,
        at -> Timestamp,
        actor -> Text,
        action -> Text,
        subject -> Text,
        detail -> Text,
    }
}

diesel::joinable!(pod_tags -> pods (alias));
diesel::allow_tables_to_appear_in_same_query!(pods, pod_tags);
