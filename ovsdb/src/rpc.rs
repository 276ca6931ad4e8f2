//! JSON-RPC 1.0 messages as OVSDB uses them (RFC 7047 §4).

use serde_json::{Map, Value as Json, json};

use crate::error::{Error, Result};

/// One JSON-RPC 1.0 message.
#[derive(Clone, Debug, PartialEq)]
pub enum Message {
    /// `{"method", "params", "id"}` with a non-null id: expects a response.
    Request {
        /// Request id, echoed by the response.
        id: Json,
        /// Method name.
        method: String,
        /// Positional parameters.
        params: Vec<Json>,
    },
    /// A request with `"id": null`: no response (`update2`, `cancel`, `locked`…).
    Notification {
        /// Method name.
        method: String,
        /// Positional parameters.
        params: Vec<Json>,
    },
    /// `{"result", "error", "id"}`: exactly one of `result` and `error` is non-null.
    Response {
        /// Id of the request answered.
        id: Json,
        /// The result, `null` on error.
        result: Json,
        /// The error, `null` on success.
        error: Json,
    },
}

impl Message {
    /// Classify a JSON value received from the peer.
    pub fn from_json(json: Json) -> Result<Self> {
        let Json::Object(mut o) = json else {
            return Err(Error::Protocol(format!(
                "JSON-RPC message is not an object: {json}"
            )));
        };
        let id = o.remove("id").unwrap_or(Json::Null);
        if let Some(method) = o.remove("method") {
            let Json::String(method) = method else {
                return Err(Error::Protocol(format!(
                    "JSON-RPC method is not a string: {method}"
                )));
            };
            let params = match o.remove("params") {
                None => Vec::new(),
                Some(Json::Array(p)) => p,
                Some(other) => {
                    return Err(Error::Protocol(format!(
                        "params of {method:?} is not an array: {other}"
                    )));
                }
            };
            return Ok(if id.is_null() {
                Self::Notification { method, params }
            } else {
                Self::Request { id, method, params }
            });
        }
        if o.contains_key("result") || o.contains_key("error") {
            let result = o.remove("result").unwrap_or(Json::Null);
            let error = o.remove("error").unwrap_or(Json::Null);
            return Ok(Self::Response { id, result, error });
        }
        Err(Error::Protocol(
            "JSON-RPC message has neither method nor result/error".into(),
        ))
    }

    /// The JSON form.
    pub fn to_json(&self) -> Json {
        match self {
            Self::Request { id, method, params } => {
                json!({"method": method, "params": params, "id": id})
            }
            Self::Notification { method, params } => {
                json!({"method": method, "params": params, "id": null})
            }
            Self::Response { id, result, error } => {
                let mut o = Map::new();
                o.insert("id".into(), id.clone());
                o.insert("result".into(), result.clone());
                o.insert("error".into(), error.clone());
                Json::Object(o)
            }
        }
    }

    /// The serialized bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_json().to_string().into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_rfc_7047_messages() {
        let echo =
            Message::from_json(json!({"method": "echo", "params": [], "id": "echo"})).unwrap();
        assert_eq!(
            echo,
            Message::Request {
                id: json!("echo"),
                method: "echo".into(),
                params: vec![]
            }
        );
        let upd = Message::from_json(json!({"method": "update2", "params": ["m", {}], "id": null}))
            .unwrap();
        assert!(matches!(upd, Message::Notification { ref method, .. } if method == "update2"));
        let resp = Message::from_json(json!({"id": 3, "result": ["Open_vSwitch"], "error": null}))
            .unwrap();
        assert!(matches!(resp, Message::Response { ref error, .. } if error.is_null()));
        for m in [echo, upd, resp] {
            assert_eq!(Message::from_json(m.to_json()).unwrap(), m);
        }
    }

    #[test]
    fn rejects_non_messages() {
        for bad in [
            json!([1]),
            json!({"id": 1}),
            json!({"method": 1}),
            json!({"method": "x", "params": {}}),
        ] {
            assert!(
                matches!(Message::from_json(bad.clone()), Err(Error::Protocol(_))),
                "{bad}"
            );
        }
    }
}
