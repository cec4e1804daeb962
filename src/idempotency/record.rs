//! The record kept per idempotency key. Stored as JSON with a version field so a
//! rolling upgrade can read the records of the previous release.

use serde::{Deserialize, Serialize};

/// Current record format. Readers accept every version up to this one.
pub const RECORD_VERSION: u8 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordState {
    /// A request owns the key until `lease_until_ms`.
    InProgress,
    /// Final answer stored; every later delivery replays it.
    Completed,
    /// The PMS may have applied the charge; the next delivery reconciles first.
    Unknown,
}

/// A response exactly as first sent, replayed byte for byte.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredResponse {
    pub status: u16,
    /// The JSON body text (our bodies are always UTF-8 JSON).
    pub body: String,
}

/// One posting of a receipt that charges several reservations, known to be on
/// the folio: a later delivery (or the worker) posts only what is missing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PostedPart {
    pub reservation_id: String,
    pub pms_reference: String,
    /// A payment settling revenue on the house account: its PMS method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment: Option<String>,
}

impl PostedPart {
    /// Whether this is the posting of `room` (reservation, and payment method
    /// for a settlement).
    pub fn is_of(&self, room: &crate::domain::RoomCharge) -> bool {
        self.reservation_id == room.reservation_id && self.payment.as_deref() == room.part_payment()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Owner token of the request that wrote it; the fencing token of every
    /// compare-and-set. Kept first so it is cheap to eyeball in `redis-cli`.
    pub owner: String,
    pub v: u8,
    pub state: RecordState,
    /// SHA-256 of the canonical request body.
    pub fp: String,
    /// Wall-clock end of the owner's lease (ms since the Unix epoch).
    #[serde(default)]
    pub lease_until_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<StoredResponse>,
    /// Postings already on the folio while others are not (several reservations).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub posted: Vec<PostedPart>,
}

impl Record {
    pub fn encode(&self) -> Vec<u8> {
        // A struct of strings and integers always serialises.
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Result<Record, String> {
        let record: Record = serde_json::from_slice(bytes)
            .map_err(|e| format!("unreadable idempotency record: {e}"))?;
        if record.v == 0 || record.v > RECORD_VERSION {
            return Err(format!(
                "idempotency record version {} is newer than this release",
                record.v
            ));
        }
        Ok(record)
    }

    pub fn lease_expired(&self, now_ms: u64) -> bool {
        self.state == RecordState::InProgress && now_ms >= self.lease_until_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_records_begin_with_the_owner() {
        // The Redis fencing scripts compare this prefix before decoding.
        let r = Record {
            owner: "0123abcd".into(),
            v: RECORD_VERSION,
            state: RecordState::InProgress,
            fp: "f".into(),
            lease_until_ms: 1,
            response: None,
            posted: Vec::new(),
        };
        assert!(r.encode().starts_with(br#"{"owner":"0123abcd","#));
    }

    #[test]
    fn records_round_trip_and_reject_future_versions() {
        let r = Record {
            owner: "o".into(),
            v: RECORD_VERSION,
            state: RecordState::Completed,
            fp: "f".into(),
            lease_until_ms: 5,
            response: Some(StoredResponse {
                status: 200,
                body: "{\"a\":1}".into(),
            }),
            posted: vec![PostedPart {
                reservation_id: "001".into(),
                pms_reference: "P1".into(),
                payment: None,
            }],
        };
        assert_eq!(Record::decode(&r.encode()).unwrap(), r);
        let future = String::from_utf8(r.encode())
            .unwrap()
            .replace("\"v\":1", "\"v\":9");
        assert!(Record::decode(future.as_bytes()).is_err());
        // A record written by a release that knew fewer fields still reads.
        let old = br#"{"owner":"o","v":1,"state":"unknown","fp":"f"}"#;
        assert_eq!(Record::decode(old).unwrap().state, RecordState::Unknown);
    }
}
