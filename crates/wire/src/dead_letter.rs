//! `events/dead_letter`: a record the station can never send was moved out of the queue.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub record: DeadLetterRecord,
    /// Why it can never be sent.
    pub why: String,
}

/// The moved record's id, stream and seq as SQL literals, quoted as stored: the row may be
/// damaged, so none of them is trusted to have its proper type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetterRecord {
    pub id: String,
    pub stream: String,
    pub seq: String,
}
