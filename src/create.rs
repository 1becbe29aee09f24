//! The fields `RequestApprovalRequest` and `CreateApprovalRequest` share:
//! the client builds them once for either call, the server parses them once
//! for either call.

use std::collections::HashMap;

use crate::v1;

/// What creates an approval, as on the wire (unvalidated).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CreateFields {
    pub approval_type: String,
    pub agent_id: String,
    pub context: Option<prost_types::Struct>,
    pub labels: HashMap<String, String>,
    pub timeout: Option<prost_types::Duration>,
    pub idempotency_key: String,
}

/// `From` both ways between [`CreateFields`] and each request message that
/// carries them, field by field (the field list is written once, here).
macro_rules! create_fields_of {
    ($($message:ident),+) => {$(
        impl From<v1::$message> for CreateFields {
            fn from(m: v1::$message) -> Self {
                let v1::$message {
                    approval_type,
                    agent_id,
                    context,
                    labels,
                    timeout,
                    idempotency_key,
                } = m;
                Self { approval_type, agent_id, context, labels, timeout, idempotency_key }
            }
        }

        impl From<CreateFields> for v1::$message {
            fn from(f: CreateFields) -> Self {
                let CreateFields {
                    approval_type,
                    agent_id,
                    context,
                    labels,
                    timeout,
                    idempotency_key,
                } = f;
                Self { approval_type, agent_id, context, labels, timeout, idempotency_key }
            }
        }
    )+};
}

create_fields_of!(RequestApprovalRequest, CreateApprovalRequest);

#[cfg(test)]
mod tests {
    use super::*;

    fn fields() -> CreateFields {
        CreateFields {
            approval_type: "deploy".into(),
            agent_id: "bot".into(),
            context: Some(prost_types::Struct::default()),
            labels: HashMap::from([("env".into(), "prod".into())]),
            timeout: Some(prost_types::Duration {
                seconds: 60,
                nanos: 0,
            }),
            idempotency_key: "k".into(),
        }
    }

    #[test]
    fn both_create_messages_carry_every_field_both_ways() {
        let request: v1::RequestApprovalRequest = fields().into();
        assert_eq!(CreateFields::from(request), fields());
        let create: v1::CreateApprovalRequest = fields().into();
        assert_eq!(CreateFields::from(create), fields());
    }
}
