//! `ews::wire`: every kind of request is valid against Microsoft's EWS schema, every decoder
//! reads schema-valid answers shaped like Microsoft's examples, and no input makes a decoder
//! panic.

#[path = "ews_wire/fuzz.rs"]
mod fuzz;
#[path = "ews_wire/requests.rs"]
mod requests;
#[path = "ews_wire/responses.rs"]
mod responses;
#[path = "ews_wire/samples.rs"]
mod samples;
