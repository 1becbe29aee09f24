//! The lifecycle of an approval, as both sides of the wire see it.

use std::fmt;

use crate::v1;

/// Where an approval is in its lifecycle. `Pending` is the only status that
/// is not final.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Status {
    /// Waiting for a human decision.
    Pending,
    /// A human approved it.
    Approved,
    /// A human rejected it.
    Rejected,
    /// Its deadline passed before anyone decided.
    Expired,
    /// The requester withdrew it.
    Cancelled,
}

impl Status {
    /// Every status, pending first.
    pub const ALL: [Status; 5] = [
        Status::Pending,
        Status::Approved,
        Status::Rejected,
        Status::Expired,
        Status::Cancelled,
    ];

    /// True for every status but `Pending`.
    ///
    /// ```
    /// use approval_api::Status;
    /// assert!(Status::Expired.is_final());
    /// assert!(!Status::Pending.is_final());
    /// ```
    pub fn is_final(self) -> bool {
        self != Status::Pending
    }

    /// The lowercase name (`"approved"`): what JSON output, metrics, the
    /// stores and `ErrorInfo` metadata say.
    ///
    /// ```
    /// use approval_api::Status;
    /// assert_eq!(Status::Approved.as_str(), "approved");
    /// assert_eq!("approved".parse::<Status>(), Ok(Status::Approved));
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Approved => "approved",
            Status::Rejected => "rejected",
            Status::Expired => "expired",
            Status::Cancelled => "cancelled",
        }
    }

    /// The status named exactly [`Status::as_str`] (what the stores wrote).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// The wire enum.
    pub fn to_wire(self) -> v1::ApprovalStatus {
        match self {
            Status::Pending => v1::ApprovalStatus::Pending,
            Status::Approved => v1::ApprovalStatus::Approved,
            Status::Rejected => v1::ApprovalStatus::Rejected,
            Status::Expired => v1::ApprovalStatus::Expired,
            Status::Cancelled => v1::ApprovalStatus::Cancelled,
        }
    }

    /// The status a wire value stands for; `None` for
    /// `APPROVAL_STATUS_UNSPECIFIED` and numbers this version does not know.
    pub fn from_wire(raw: i32) -> Option<Self> {
        Some(match v1::ApprovalStatus::try_from(raw).ok()? {
            v1::ApprovalStatus::Unspecified => return None,
            v1::ApprovalStatus::Pending => Status::Pending,
            v1::ApprovalStatus::Approved => Status::Approved,
            v1::ApprovalStatus::Rejected => Status::Rejected,
            v1::ApprovalStatus::Expired => Status::Expired,
            v1::ApprovalStatus::Cancelled => Status::Cancelled,
        })
    }
}

impl From<Status> for v1::ApprovalStatus {
    fn from(s: Status) -> Self {
        s.to_wire()
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not a status (from [`Status`]'s `FromStr`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownStatus(pub String);

impl fmt::Display for UnknownStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown status {:?}: use ", self.0)?;
        for (i, s) in Status::ALL.iter().enumerate() {
            let sep = match i {
                0 => "",
                i if i + 1 == Status::ALL.len() => " or ",
                _ => ", ",
            };
            write!(f, "{sep}{s}")?;
        }
        Ok(())
    }
}

impl std::error::Error for UnknownStatus {}

impl std::str::FromStr for Status {
    type Err = UnknownStatus;

    /// Reads a name in any case, with or without the wire enum's prefix:
    /// `approved`, `APPROVED`, `APPROVAL_STATUS_APPROVED`.
    fn from_str(name: &str) -> Result<Self, UnknownStatus> {
        let lower = name.trim().to_ascii_lowercase();
        let bare = lower.strip_prefix("approval_status_").unwrap_or(&lower);
        Status::from_name(bare).ok_or_else(|| UnknownStatus(name.to_string()))
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for Status {
    /// As [`Status::as_str`].
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_survives_the_wire_and_its_name() {
        for s in Status::ALL {
            assert_eq!(Status::from_wire(s.to_wire() as i32), Some(s));
            assert_eq!(Status::from_name(s.as_str()), Some(s));
        }
    }

    #[test]
    fn the_wire_enum_and_the_names_agree() {
        // APPROVAL_STATUS_APPROVED is Approved, whose name is "approved".
        for s in Status::ALL {
            let wire = s.to_wire().as_str_name();
            assert_eq!(
                wire.strip_prefix("APPROVAL_STATUS_"),
                Some(&*s.as_str().to_ascii_uppercase())
            );
        }
    }

    #[test]
    fn only_pending_is_not_final() {
        let finals: Vec<_> = Status::ALL.into_iter().filter(|s| s.is_final()).collect();
        assert_eq!(
            finals,
            [
                Status::Approved,
                Status::Rejected,
                Status::Expired,
                Status::Cancelled
            ]
        );
    }

    #[test]
    fn unspecified_and_unknown_wire_values_are_no_status() {
        assert_eq!(
            Status::from_wire(v1::ApprovalStatus::Unspecified as i32),
            None
        );
        assert_eq!(Status::from_wire(99), None);
    }

    #[test]
    fn statuses_parse_from_every_spelling_the_service_uses() {
        assert_eq!("APPROVED".parse(), Ok(Status::Approved));
        assert_eq!("APPROVAL_STATUS_CANCELLED".parse(), Ok(Status::Cancelled));
        assert_eq!("expired".parse(), Ok(Status::Expired));
        let err = "maybe".parse::<Status>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown status \"maybe\": use pending, approved, rejected, expired or cancelled"
        );
    }

    #[test]
    fn the_stored_names_are_exact() {
        assert_eq!(Status::from_name("APPROVED"), None);
    }
}
