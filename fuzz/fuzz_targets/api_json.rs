//! The JSON request bodies the server reads (`POST /v1/attestations`, `POST /v1/status`,
//! `POST /v1/admin/builders`) and the answers the client reads, deserialized the way
//! the handlers do (serde_json, then serde_path_to_error to name the field): no panic,
//! both ways agree on what is valid, and what parses serializes to JSON that parses
//! to the same JSON again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nhc_core::api::{CreateBuilderRequest, OutputReport, StatusRequest, StatusResponse, SubmitRequest, SubmitResponse};
use serde::{de::DeserializeOwned, Serialize};

/// As `nhc_handlers::extract::parse_json`: a fast parse, and on failure a second one
/// that names the field. Returns whether the body was accepted.
fn handler_parse<T: DeserializeOwned + Serialize>(bytes: &[u8]) -> Option<T> {
    match serde_json::from_slice::<T>(bytes) {
        Ok(v) => Some(v),
        Err(_) => {
            let mut de = serde_json::Deserializer::from_slice(bytes);
            match serde_path_to_error::deserialize::<_, T>(&mut de) {
                Err(e) => {
                    let _ = format!("{}: {}", e.path(), e.inner());
                    let _ = e.inner().classify();
                }
                // The handlers treat this as unreachable: then trailing data is what failed.
                Ok(_) => assert!(de.end().is_err(), "serde_json refused a body serde_path_to_error accepts"),
            }
            None
        }
    }
}

fn round_trip<T: DeserializeOwned + Serialize>(bytes: &[u8]) {
    let Some(v) = handler_parse::<T>(bytes) else { return };
    let json = serde_json::to_vec(&v).expect("serializes");
    let again = handler_parse::<T>(&json).expect("its own JSON parses");
    assert_eq!(serde_json::to_vec(&again).expect("serializes"), json);
}

fuzz_target!(|data: &[u8]| {
    round_trip::<SubmitRequest>(data);
    round_trip::<StatusRequest>(data);
    round_trip::<CreateBuilderRequest>(data);
    round_trip::<SubmitResponse>(data);
    round_trip::<StatusResponse>(data);
    round_trip::<OutputReport>(data);
});
