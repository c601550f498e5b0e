//! Any bytes as a catch-up request and as a response: decoding never panics, and what decodes
//! encodes back to the same bytes (one encoding per message).
#![no_main]

use agora_node::proto::{Request, Response};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(request) = Request::decode(bytes) {
        assert_eq!(request.encode(), bytes, "a request has one encoding");
    }
    if let Ok(response) = Response::decode(bytes) {
        assert_eq!(response.encode(), bytes, "a response has one encoding");
    }
});
