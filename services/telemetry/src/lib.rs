//! What incasso tells an operator's observability stack, beyond its logs: the instruments it
//! records ([`metrics`], exported over OTLP and as Prometheus text on the admin port) and the
//! W3C trace context it takes from callers and hands to the systems it calls
//! ([`propagation`]). The transports record through this crate; only the binary chooses
//! where the data goes, so without an OTLP endpoint nothing leaves the process. No personal
//! data is ever a label or an attribute: every label value is one of incasso's own names
//! (a method, a primitive, an outcome, a classification, a topic).

pub mod metrics;
pub mod propagation;

pub use metrics::{Metrics, metrics};
