//! Helpers shared by the metrics crate's integration tests.
#![allow(dead_code)]

include!("png.rs");
