//! W3C Trace Context for the audit log: the `traceparent` gRPC metadata an exchange carries, taken
//! from the caller or started here, with a fresh span id per hop so the two sides of an exchange
//! can be matched in their audit logs. Carries ids only, never data: an id that is not W3C hex, or
//! whose hex holds nine decimal digits that pass the BSN or onderwijsnummer check, is replaced by
//! a fresh one, and the node never makes such an id itself.

use ring::rand::{SecureRandom, SystemRandom};

/// The metadata key, as W3C Trace Context names the header.
pub const TRACEPARENT: &str = "traceparent";

/// A trace id and the span id of this hop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    pub trace_id: String,
    pub span_id: String,
    /// The span id of the caller's hop, if the caller sent one.
    pub parent_span_id: Option<String>,
}

/// A random id of `bytes` bytes in lowercase hex, drawn again while it holds a pupil id's digits.
fn random_hex(bytes: usize) -> String {
    let rng = SystemRandom::new();
    loop {
        let mut buf = vec![0u8; bytes];
        // Without system randomness ring cannot run at all; an all-zero id is then invalid and
        // visible in the log rather than silently reused.
        let _ = rng.fill(&mut buf);
        let hex: String = buf.iter().map(|b| format!("{b:02x}")).collect();
        if !crate::pseudonym::holds_pupil_id_digits(&hex) {
            return hex;
        }
    }
}

/// A W3C id of `len` lowercase hex digits, not all zero, that carries no pupil id.
fn is_hex(text: &str, len: usize) -> bool {
    text.len() == len
        && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        && text.bytes().any(|b| b != b'0')
        && !crate::pseudonym::holds_pupil_id_digits(text)
}

/// Parses a `traceparent` value ("00-<32 hex trace id>-<16 hex span id>-<2 hex flags>").
pub fn parse(value: &str) -> Option<(String, String)> {
    let mut parts = value.trim().split('-');
    let (version, trace, span, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let version_ok = version.len() == 2
        && version
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        && version != "ff";
    if parts.next().is_some() || !version_ok {
        return None;
    }
    if !is_hex(trace, 32) || !is_hex(span, 16) || flags.len() != 2 {
        return None;
    }
    Some((trace.to_owned(), span.to_owned()))
}

impl TraceContext {
    /// Continues the caller's trace (a new span under its span), or starts a new trace.
    pub fn from_metadata(metadata: &tonic::metadata::MetadataMap) -> Self {
        Self::continuing(metadata.get(TRACEPARENT).and_then(|v| v.to_str().ok()))
    }

    /// A new trace of the node's own (a background task, a reload): no parent.
    pub fn new_root() -> Self {
        Self::continuing(None)
    }

    /// Continues the trace of a `traceparent` value (any transport's), or starts a new trace if
    /// there is none or it is malformed.
    pub fn continuing(traceparent: Option<&str>) -> Self {
        let incoming = traceparent.and_then(parse);
        match incoming {
            Some((trace_id, parent)) => Self {
                trace_id,
                span_id: random_hex(8),
                parent_span_id: Some(parent),
            },
            None => Self {
                trace_id: random_hex(16),
                span_id: random_hex(8),
                parent_span_id: None,
            },
        }
    }

    /// The `traceparent` value to send on to a peer: this trace, this hop's span as parent.
    pub fn header(&self) -> String {
        format!("00-{}-{}-01", self.trace_id, self.span_id)
    }

    /// Puts this context on an outgoing request.
    pub fn inject<T>(&self, request: &mut tonic::Request<T>) {
        if let Ok(value) = self.header().parse() {
            request.metadata_mut().insert(TRACEPARENT, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continues_a_valid_parent_and_refuses_junk() {
        let mut md = tonic::metadata::MetadataMap::new();
        md.insert(
            TRACEPARENT,
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
                .parse()
                .unwrap(),
        );
        let t = TraceContext::from_metadata(&md);
        assert_eq!(t.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(t.parent_span_id.as_deref(), Some("00f067aa0ba902b7"));
        assert_ne!(t.span_id, "00f067aa0ba902b7");
        assert!(parse(&t.header()).is_some());
        for junk in [
            "",
            "00-xyz-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert!(parse(junk).is_none(), "{junk}");
        }
        let fresh = TraceContext::from_metadata(&tonic::metadata::MetadataMap::new());
        assert!(is_hex(&fresh.trace_id, 32) && is_hex(&fresh.span_id, 16));
    }

    #[test]
    fn ids_holding_a_pupil_id_are_replaced() {
        // 111222333 passes the 11-proef; 123456789 does not.
        for carried in [
            "00-a111222333bbbbbbbbbbbbbbbbbbbbbb-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-c111222333dddddd-01",
        ] {
            assert!(parse(carried).is_none(), "{carried}");
            let mut md = tonic::metadata::MetadataMap::new();
            md.insert(TRACEPARENT, carried.parse().unwrap());
            let t = TraceContext::from_metadata(&md);
            assert!(!t.header().contains("111222333"));
        }
        assert!(parse("00-a123456789bbbbbbbbbbbbbbbbbbbbbb-00f067aa0ba902b7-01").is_some());
        for _ in 0..2000 {
            assert!(!crate::pseudonym::holds_pupil_id_digits(&random_hex(16)));
        }
    }
}
