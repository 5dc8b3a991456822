//! The generated protobuf and gRPC types of `proto/pactgate/v1`. Only the `rpc` module converts
//! between these and the domain types.
#![allow(clippy::all, missing_docs)]

tonic::include_proto!("pactgate.v1");

/// The file descriptor set of `proto/`, served by gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/pactgate_descriptor.bin"));

/// A partner's raw record holds the pupil id: its `Debug` shows which record and what kind of
/// signal it is, never the id (or any other field a reader does not need to find the record).
impl std::fmt::Debug for SignalRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignalRecord")
            .field("source_record_id", &self.source_record_id)
            .field("category", &self.category)
            .field("pupil_id", &"<withheld>")
            .finish_non_exhaustive()
    }
}

/// One record of a push, as the stream's message.
impl From<SignalRecord> for PushRequest {
    fn from(record: SignalRecord) -> Self {
        Self {
            record: Some(record),
        }
    }
}

/// The FG's access report request holds the parent's BSN: its `Debug` never shows it.
impl std::fmt::Debug for AccessReportRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessReportRequest")
            .field("pupil_id", &"<withheld>")
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn signal_record_debug_withholds_the_pupil_id() {
        let record = super::SignalRecord {
            source_record_id: "r-1".into(),
            pupil_id: "111222333".into(),
            ..Default::default()
        };
        let shown = format!("{record:?}");
        assert!(shown.contains("r-1"), "{shown}");
        assert!(!shown.contains("111222333"), "{shown}");
        // The push stream's message wraps the record and inherits its Debug.
        let shown = format!("{:?}", super::PushRequest::from(record));
        assert!(shown.contains("r-1"), "{shown}");
        assert!(!shown.contains("111222333"), "{shown}");
    }
}
