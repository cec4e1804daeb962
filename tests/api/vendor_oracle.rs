//! The vendors' published API descriptions as the oracle of the fake PMSs.
//!
//! A [`Vendor`] is built from the subset files in `tests/vendor/<pms>/` (cut from
//! the vendor's OpenAPI 3 or Swagger 2.0 description by that folder's
//! `extract.py`, never edited by hand). It checks a request the adapter sent:
//!
//! * the operation exists: method and path template, below the description's
//!   base path (`servers[0].url`'s path, or Swagger's `basePath`);
//! * the security the operation (or the document) asks for: a bearer token
//!   (`http`/`bearer`, `oauth2`), HTTP Basic, an API key in a header, or — for
//!   Mews, whose description says its keys travel in the JSON body — a body field;
//! * every path, query, header and form parameter: required ones present, each
//!   value of the declared type, enum, pattern and bounds; query parameters the
//!   description does not list are refused (that is how a misspelt filter shows);
//! * the content type and the JSON body against the operation's request schema,
//!   with `jsonschema` (local `$ref`s resolve against the subset document).
//!
//! It also checks an answer of the fake against the response schema the
//! operation lists for that status (a status it does not list is a violation).
//!
//! OpenAPI 3.0 and Swagger 2.0 schemas are not quite JSON Schema; [`json_schema`]
//! turns `nullable`/`x-nullable` into a `null` alternative and boolean
//! `exclusiveMinimum`/`exclusiveMaximum` into numbers. Formats are checked, except
//! `uuid`: the conformance kit's reservations are `001`, `002`, … for every PMS.
//!
//! Vendor rules that the schemas cannot express are [`RequestRule`]s and
//! [`ResponseRule`]s, written next to each fake with a comment quoting where the
//! vendor states them.
//!
//! [`guard`] wraps a fake's actix `App`: every request goes through the vendor's
//! checks; a violation is answered as the vendor answers a bad request (400 in
//! its error shape, built by the fake) and recorded in [`Violations`], whose
//! [`Violations`] guard fails the test when the fake is dropped.

use crate::path_template::{match_template, percent_decode};
use std::collections::{BTreeMap, HashMap};
use std::future::{Ready, ready};
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::{HttpResponse, web};
use futures_util::future::LocalBoxFuture;
use serde_json::{Map, Value, json};

// ---------------------------------------------------------------------------
// The description
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum In {
    Path,
    Query,
    Header,
    Form,
}

#[derive(Debug, Clone)]
struct Param {
    name: String,
    location: In,
    required: bool,
    /// JSON Schema of the value (after [`json_schema`]).
    schema: Value,
    /// For arrays: `true` when each value is its own `name=value` pair
    /// (OpenAPI `form` + `explode`, Swagger `multi`), `false` when comma-joined.
    explode: bool,
}

#[derive(Debug, Clone)]
struct Body {
    required: bool,
    media: Vec<String>,
    schema: Option<Value>,
}

#[derive(Debug, Clone)]
struct Operation {
    method: String,
    /// The full path template, base path included.
    template: String,
    id: String,
    params: Vec<Param>,
    body: Option<Body>,
    /// Status (or `default`) → JSON Schema of the answer, if the description gives one.
    responses: BTreeMap<String, Option<Value>>,
    /// Alternatives of scheme names (any one alternative must hold entirely).
    security: Vec<Vec<String>>,
}

struct Document {
    label: String,
    /// The schema sections (`components`, `definitions`) after [`json_schema`].
    sections: Map<String, Value>,
    schemes: Map<String, Value>,
    operations: Vec<Operation>,
}

/// An extra check of a request the schemas cannot express: the operation id,
/// the request, and its JSON body (`Null` when none); each string is a violation.
pub type RequestRule = fn(&str, &Request, &Value) -> Vec<String>;
/// An extra check of an answer: the operation id, the request, the status and
/// the JSON answer (`Null` when none).
pub type ResponseRule = fn(&str, &Request, u16, &Value) -> Vec<String>;

/// One vendor's API as its description states it.
pub struct Vendor {
    pub name: &'static str,
    documents: Vec<Document>,
    api_keys_in_body: bool,
    /// Path prefixes the subset does not describe, passed through unchecked.
    outside: Vec<&'static str>,
    /// Statuses the HTTP infrastructure in front of an API answers (gateways,
    /// load balancers), which no description lists; their answers pass unchecked.
    gateway_statuses: Vec<u16>,
    request_rules: Vec<RequestRule>,
    response_rules: Vec<ResponseRule>,
    validators: Mutex<HashMap<String, Arc<jsonschema::Validator>>>,
}

/// A request as the fake received it.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// Decoded path.
    pub path: String,
    /// Decoded query pairs, in order.
    pub query: Vec<(String, String)>,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn query_values(&self, name: &str) -> Vec<&str> {
        self.query
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The body as JSON, `Null` when empty or not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// The operation a request was found to be.
#[derive(Debug, Clone)]
pub struct Matched {
    document: usize,
    operation: usize,
}

impl Vendor {
    /// A vendor from its subset files (`include_str!` of `tests/vendor/<pms>/…`).
    pub fn new(name: &'static str, subsets: &[(&str, &str)]) -> Vendor {
        let documents = subsets
            .iter()
            .map(|(label, text)| {
                let doc: Value = serde_json::from_str(text)
                    .unwrap_or_else(|e| panic!("{label} is not JSON: {e}"));
                Document::load(label, &doc)
            })
            .collect();
        Vendor {
            name,
            documents,
            api_keys_in_body: false,
            outside: Vec::new(),
            gateway_statuses: Vec::new(),
            request_rules: Vec::new(),
            response_rules: Vec::new(),
            validators: Mutex::new(HashMap::new()),
        }
    }

    /// API key schemes are fields of the JSON body, not headers (Mews).
    pub fn api_keys_in_body(mut self) -> Vendor {
        self.api_keys_in_body = true;
        self
    }

    /// Requests below `prefix` are not checked: the fake serves an endpoint the
    /// vendor describes elsewhere (say why at the call).
    pub fn outside(mut self, prefix: &'static str) -> Vendor {
        self.outside.push(prefix);
        self
    }

    /// Answers with these statuses are not checked: a fake plays the gateway in
    /// front of the API (say why at the call).
    pub fn gateway_statuses(mut self, statuses: &[u16]) -> Vendor {
        self.gateway_statuses.extend_from_slice(statuses);
        self
    }

    pub fn is_outside(&self, path: &str) -> bool {
        self.outside.iter().any(|p| path.starts_with(p))
    }

    pub fn request_rule(mut self, rule: RequestRule) -> Vendor {
        self.request_rules.push(rule);
        self
    }

    pub fn response_rule(mut self, rule: ResponseRule) -> Vendor {
        self.response_rules.push(rule);
        self
    }

    fn operation(&self, m: &Matched) -> (&Document, &Operation) {
        let doc = &self.documents[m.document];
        (doc, &doc.operations[m.operation])
    }

    /// Whether the description describes this request's method and path at all.
    pub fn find(
        &self,
        method: &str,
        path: &str,
    ) -> Result<(Matched, BTreeMap<String, String>), String> {
        let mut path_known = false;
        for (d, doc) in self.documents.iter().enumerate() {
            for (o, op) in doc.operations.iter().enumerate() {
                let Some(params) = match_template(&op.template, path) else {
                    continue;
                };
                path_known = true;
                if op.method.eq_ignore_ascii_case(method) {
                    return Ok((
                        Matched {
                            document: d,
                            operation: o,
                        },
                        params,
                    ));
                }
            }
        }
        Err(if path_known {
            format!(
                "{method} {path}: the {} description has this path, but not this method",
                self.name
            )
        } else {
            format!(
                "{method} {path}: no such operation in the {} description",
                self.name
            )
        })
    }

    /// Every way `request` departs from the description; the operation it is.
    pub fn check_request(&self, request: &Request) -> (Option<Matched>, Vec<String>) {
        let (matched, path_params) = match self.find(&request.method, &request.path) {
            Ok(found) => found,
            Err(e) => return (None, vec![e]),
        };
        let (doc, op) = self.operation(&matched);
        let at = |m: String| format!("{} ({}): {m}", op.id, doc.label);
        let mut out = Vec::new();
        let body_json = request.json();

        // The body first: security may live there.
        let form: Vec<(String, String)> = if op.params.iter().any(|p| p.location == In::Form) {
            form_pairs(&request.body)
        } else {
            Vec::new()
        };
        if let Some(body) = &op.body {
            let media = request
                .header("content-type")
                .map(|c| essence(c).to_string())
                .unwrap_or_default();
            if request.body.is_empty() {
                if body.required {
                    out.push(at("the request body is required".into()));
                }
            } else if !body.media.iter().any(|m| essence(m) == media) {
                out.push(at(format!(
                    "content type `{media}`; the description accepts {:?}",
                    body.media
                )));
            } else if let Some(schema) = &body.schema {
                if body_json.is_null() && !request.body.is_empty() {
                    out.push(at("the body is not JSON".into()));
                } else {
                    for e in self.errors(doc, &format!("{}#body", op.id), schema, &body_json) {
                        out.push(at(format!("body: {e}")));
                    }
                }
            }
        }

        // Security.
        if !op.security.is_empty() {
            let failures: Vec<String> = op
                .security
                .iter()
                .filter_map(|alternative| {
                    let missing: Vec<String> = alternative
                        .iter()
                        .filter_map(|name| self.scheme_missing(doc, name, request, &body_json))
                        .collect();
                    (!missing.is_empty()).then(|| missing.join(", "))
                })
                .collect();
            if failures.len() == op.security.len() {
                out.push(at(format!("security: {}", failures.join("; or "))));
            }
        }

        // Parameters.
        for p in &op.params {
            let texts: Vec<&str> = match p.location {
                In::Path => path_params
                    .get(&p.name)
                    .map(String::as_str)
                    .into_iter()
                    .collect(),
                In::Query => request.query_values(&p.name),
                In::Header => request.header(&p.name).into_iter().collect(),
                In::Form => form
                    .iter()
                    .filter(|(n, _)| *n == p.name)
                    .map(|(_, v)| v.as_str())
                    .collect(),
            };
            let kind = format!("{:?}", p.location).to_lowercase();
            if texts.is_empty() {
                if p.required {
                    out.push(at(format!("{kind} parameter `{}` is required", p.name)));
                }
                continue;
            }
            let value = parameter_value(&p.schema, &texts, p.explode);
            let value = match value {
                Ok(v) => v,
                Err(e) => {
                    out.push(at(format!("{kind} parameter `{}`: {e}", p.name)));
                    continue;
                }
            };
            let key = format!("{}#{kind}:{}", op.id, p.name);
            for e in self.errors(doc, &key, &p.schema, &value) {
                out.push(at(format!("{kind} parameter `{}` = {value}: {e}", p.name)));
            }
        }
        for (name, _) in &request.query {
            if !op
                .params
                .iter()
                .any(|p| p.location == In::Query && p.name == *name)
            {
                out.push(at(format!(
                    "query parameter `{name}` is not in the description"
                )));
            }
        }
        for (name, _) in &form {
            if !op
                .params
                .iter()
                .any(|p| p.location == In::Form && p.name == *name)
            {
                out.push(at(format!("form field `{name}` is not in the description")));
            }
        }

        for rule in &self.request_rules {
            out.extend(rule(&op.id, request, &body_json).into_iter().map(&at));
        }
        (Some(matched), out)
    }

    /// `None` when scheme `name` is satisfied, else what is missing.
    fn scheme_missing(
        &self,
        doc: &Document,
        name: &str,
        request: &Request,
        body: &Value,
    ) -> Option<String> {
        let Some(scheme) = doc.schemes.get(name) else {
            return Some(format!("scheme {name} is not defined"));
        };
        let authorization = request.header("authorization").unwrap_or("");
        let has_prefix = |prefix: &str| {
            authorization.len() > prefix.len()
                && authorization[..prefix.len()].eq_ignore_ascii_case(prefix)
        };
        let kind = scheme["type"].as_str().unwrap_or("");
        let http = scheme["scheme"].as_str().unwrap_or("").to_ascii_lowercase();
        let ok = match (kind, http.as_str()) {
            ("http", "bearer") | ("oauth2", _) | ("openIdConnect", _) => has_prefix("Bearer "),
            ("http", "basic") | ("basic", _) => has_prefix("Basic "),
            ("apiKey", _) => {
                let key = scheme["name"].as_str().unwrap_or("");
                if self.api_keys_in_body {
                    body.get(key)
                        .and_then(Value::as_str)
                        .is_some_and(|v| !v.is_empty())
                } else {
                    match scheme["in"].as_str() {
                        Some("header") => request.header(key).is_some_and(|v| !v.is_empty()),
                        Some("query") => !request.query_values(key).is_empty(),
                        _ => false,
                    }
                }
            }
            _ => false,
        };
        (!ok).then(|| format!("{name} ({kind} {http})"))
    }

    /// Every way an answer departs from the description.
    pub fn check_response(
        &self,
        matched: &Matched,
        request: &Request,
        status: u16,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Vec<String> {
        let (doc, op) = self.operation(matched);
        let at = |m: String| format!("{} ({}) answer {status}: {m}", op.id, doc.label);
        let mut out = Vec::new();
        if self.gateway_statuses.contains(&status) {
            return out;
        }
        let schema = match op
            .responses
            .get(&status.to_string())
            .or_else(|| op.responses.get("default"))
        {
            None => {
                out.push(at(format!(
                    "status not in the description (it lists {:?})",
                    op.responses.keys().collect::<Vec<_>>()
                )));
                None
            }
            Some(schema) => schema.as_ref(),
        };
        let json: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        if let Some(schema) = schema {
            let is_json = content_type.is_some_and(|c| essence(c).ends_with("json"));
            if body.is_empty() {
                out.push(at(
                    "the description gives a body; the answer has none".into()
                ));
            } else if !is_json || json.is_null() {
                out.push(at("the answer is not JSON".into()));
            } else {
                let key = format!("{}#answer:{status}", op.id);
                out.extend(self.errors(doc, &key, schema, &json).into_iter().map(&at));
            }
        }
        for rule in &self.response_rules {
            out.extend(rule(&op.id, request, status, &json).into_iter().map(&at));
        }
        out
    }

    /// Schema errors of `instance`, as `path: message`.
    fn errors(&self, doc: &Document, key: &str, schema: &Value, instance: &Value) -> Vec<String> {
        let key = format!("{}:{key}", doc.label);
        let validator = {
            let mut cache = self.validators.lock().unwrap_or_else(|p| p.into_inner());
            cache
                .entry(key)
                .or_insert_with(|| Arc::new(doc.validator(schema)))
                .clone()
        };
        validator
            .iter_errors(instance)
            .map(|e| {
                let path = e.instance_path().to_string();
                let path = if path.is_empty() {
                    "/".to_string()
                } else {
                    path
                };
                format!("{path}: {e}")
            })
            .collect()
    }

    /// The operations of the description (`METHOD template`), for tests.
    pub fn operations(&self) -> Vec<String> {
        self.documents
            .iter()
            .flat_map(|d| {
                d.operations
                    .iter()
                    .map(|o| format!("{} {}", o.method, o.template))
            })
            .collect()
    }
}

impl Document {
    fn load(label: &str, doc: &Value) -> Document {
        let swagger = doc.get("swagger").is_some();
        let base = if swagger {
            doc["basePath"].as_str().unwrap_or("").to_string()
        } else {
            doc["servers"][0]["url"]
                .as_str()
                .map(server_path)
                .unwrap_or_default()
        };
        let base = base.trim_end_matches('/').to_string();
        let mut sections = Map::new();
        for key in ["components", "definitions", "parameters", "responses"] {
            if let Some(v) = doc.get(key) {
                sections.insert(key.to_string(), json_schema(v));
            }
        }
        let schemes = if swagger {
            doc["securityDefinitions"]
                .as_object()
                .cloned()
                .unwrap_or_default()
        } else {
            doc["components"]["securitySchemes"]
                .as_object()
                .cloned()
                .unwrap_or_default()
        };
        let mut operations = Vec::new();
        for (template, item) in doc["paths"].as_object().expect("paths") {
            let shared: Vec<Value> = item["parameters"].as_array().cloned().unwrap_or_default();
            for (method, spec) in item.as_object().expect("path item") {
                if !matches!(
                    method.as_str(),
                    "get" | "put" | "post" | "delete" | "patch" | "head" | "options"
                ) {
                    continue;
                }
                let security = spec
                    .get("security")
                    .or_else(|| doc.get("security"))
                    .and_then(Value::as_array)
                    .map(|alternatives| {
                        alternatives
                            .iter()
                            .map(|a| {
                                a.as_object()
                                    .map(|o| o.keys().cloned().collect())
                                    .unwrap_or_default()
                            })
                            .collect::<Vec<Vec<String>>>()
                    })
                    .unwrap_or_default();
                // An empty alternative (`{}`) means "no security needed".
                let security = if security.iter().any(Vec::is_empty) {
                    Vec::new()
                } else {
                    security
                };
                let mut params = Vec::new();
                let mut body = None;
                let raw_params: Vec<Value> = shared
                    .iter()
                    .chain(spec["parameters"].as_array().into_iter().flatten())
                    .map(|p| resolve(doc, p).clone())
                    .collect();
                for p in &raw_params {
                    let name = p["name"].as_str().unwrap_or("").to_string();
                    let location = match p["in"].as_str() {
                        Some("path") => In::Path,
                        Some("query") => In::Query,
                        Some("header") => In::Header,
                        Some("formData") => In::Form,
                        Some("body") => {
                            let consumes = consumes(spec, doc, "application/json");
                            body = Some(Body {
                                required: p["required"].as_bool().unwrap_or(false),
                                media: consumes,
                                schema: Some(json_schema(&p["schema"])),
                            });
                            continue;
                        }
                        _ => continue,
                    };
                    let (schema, explode) = if swagger {
                        let mut s = Map::new();
                        for (k, v) in p.as_object().expect("parameter") {
                            if !matches!(
                                k.as_str(),
                                "name"
                                    | "in"
                                    | "required"
                                    | "description"
                                    | "collectionFormat"
                                    | "allowEmptyValue"
                            ) && !k.starts_with("x-")
                            {
                                s.insert(k.clone(), v.clone());
                            }
                        }
                        let multi = p["collectionFormat"].as_str() == Some("multi");
                        (json_schema(&Value::Object(s)), multi)
                    } else {
                        let style = p["style"].as_str().unwrap_or(match location {
                            In::Query | In::Form => "form",
                            _ => "simple",
                        });
                        let explode = p["explode"].as_bool().unwrap_or(style == "form");
                        (json_schema(&p["schema"]), explode)
                    };
                    params.push(Param {
                        name,
                        location,
                        required: p["required"].as_bool().unwrap_or(location == In::Path),
                        schema,
                        explode,
                    });
                }
                if params.iter().any(|p| p.location == In::Form) {
                    let consumes = consumes(spec, doc, "application/x-www-form-urlencoded");
                    body = Some(Body {
                        required: params.iter().any(|p| p.location == In::Form && p.required),
                        media: consumes,
                        schema: None,
                    });
                }
                if let Some(rb) = spec.get("requestBody") {
                    let rb = resolve(doc, rb);
                    let content = rb["content"].as_object().cloned().unwrap_or_default();
                    body = Some(Body {
                        required: rb["required"].as_bool().unwrap_or(false),
                        media: content.keys().cloned().collect(),
                        schema: content
                            .iter()
                            .find(|(m, _)| essence(m).ends_with("json"))
                            .map(|(_, c)| json_schema(&c["schema"])),
                    });
                }
                let mut responses = BTreeMap::new();
                for (status, r) in spec["responses"].as_object().into_iter().flatten() {
                    let r = resolve(doc, r);
                    let schema = if swagger {
                        r.get("schema").map(json_schema)
                    } else {
                        r["content"].as_object().and_then(|c| {
                            c.iter()
                                .find(|(m, _)| essence(m).ends_with("json") || *m == "*/*")
                                .or_else(|| c.iter().next())
                                .and_then(|(_, c)| c.get("schema"))
                                .map(json_schema)
                        })
                    };
                    responses.insert(status.clone(), schema);
                }
                operations.push(Operation {
                    method: method.to_uppercase(),
                    template: format!("{base}{template}"),
                    id: spec["operationId"].as_str().unwrap_or("?").to_string(),
                    params,
                    body,
                    responses,
                    security,
                });
            }
        }
        Document {
            label: label.to_string(),
            sections,
            schemes,
            operations,
        }
    }

    /// A validator for a schema of the description: the schema under `allOf`,
    /// with the description's schema sections beside it so local `$ref`s resolve.
    fn validator(&self, schema: &Value) -> jsonschema::Validator {
        let mut root = self.sections.clone();
        root.insert("allOf".into(), json!([schema]));
        jsonschema::draft202012::options()
            .should_validate_formats(true)
            // The kit's reservation ids (`001`, …) are not UUIDs; see the module doc.
            .with_format("uuid", |_: &str| true)
            .build(&Value::Object(root))
            .unwrap_or_else(|e| panic!("{}: not a schema: {e}: {schema}", self.label))
    }
}

/// The path of a server URL (`https://api.mews.com` → ``).
fn server_path(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => u.path().to_string(),
        Err(_) => url.to_string(),
    }
}

/// `$ref` objects of the document resolved (parameters, request bodies, responses).
fn resolve<'a>(doc: &'a Value, node: &'a Value) -> &'a Value {
    let mut node = node;
    for _ in 0..8 {
        let Some(r) = node.get("$ref").and_then(Value::as_str) else {
            break;
        };
        let Some(pointer) = r.strip_prefix('#') else {
            panic!("external reference {r}");
        };
        node = doc
            .pointer(pointer)
            .unwrap_or_else(|| panic!("unresolvable {r}"));
    }
    node
}

/// OpenAPI 3.0 / Swagger 2.0 schema → JSON Schema 2020-12.
pub fn json_schema(node: &Value) -> Value {
    match node {
        Value::Array(items) => Value::Array(items.iter().map(json_schema).collect()),
        Value::Object(map) => {
            let mut out = Map::new();
            for (k, v) in map {
                // Keys whose values are not schemas keep them as they are.
                let keep = matches!(
                    k.as_str(),
                    "enum"
                        | "example"
                        | "examples"
                        | "default"
                        | "const"
                        | "description"
                        | "required"
                ) || k.starts_with("x-");
                out.insert(k.clone(), if keep { v.clone() } else { json_schema(v) });
            }
            for (flag, bound) in [
                ("exclusiveMinimum", "minimum"),
                ("exclusiveMaximum", "maximum"),
            ] {
                if let Some(Value::Bool(b)) = out.get(flag).cloned() {
                    out.remove(flag);
                    if b && let Some(limit) = out.remove(bound) {
                        out.insert(flag.to_string(), limit);
                    }
                }
            }
            let nullable = matches!(out.remove("nullable"), Some(Value::Bool(true)))
                | matches!(out.remove("x-nullable"), Some(Value::Bool(true)));
            if !nullable {
                return Value::Object(out);
            }
            if let Some(Value::Array(values)) = out.get_mut("enum")
                && !values.contains(&Value::Null)
            {
                values.push(Value::Null);
            }
            match out.get("type").cloned() {
                Some(Value::String(t)) if !out.contains_key("$ref") => {
                    out.insert("type".into(), json!([t, "null"]));
                    Value::Object(out)
                }
                _ => json!({ "anyOf": [{ "type": "null" }, Value::Object(out)] }),
            }
        }
        other => other.clone(),
    }
}

/// The media type without parameters, lower-cased.
fn essence(media: &str) -> &str {
    media.split(';').next().unwrap_or("").trim()
}

/// `a=1&b=2` (URL-encoded) → pairs.
fn form_pairs(text: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(text);
    match reqwest::Url::parse(&format!("http://x/?{text}")) {
        Ok(u) => u
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// A parameter's texts as the JSON value its schema is checked against.
fn parameter_value(schema: &Value, texts: &[&str], explode: bool) -> Result<Value, String> {
    let kind = schema_type(schema);
    if kind.as_deref() == Some("array") {
        let items = &schema["items"];
        let parts: Vec<&str> = if explode {
            texts.to_vec()
        } else {
            if texts.len() > 1 {
                return Err(format!(
                    "sent {} times; the description joins values with commas",
                    texts.len()
                ));
            }
            texts[0].split(',').collect()
        };
        return Ok(Value::Array(
            parts.iter().map(|t| scalar(items, t)).collect(),
        ));
    }
    if texts.len() > 1 {
        return Err(format!(
            "sent {} times; the description takes one value",
            texts.len()
        ));
    }
    Ok(scalar(schema, texts[0]))
}

fn schema_type(schema: &Value) -> Option<String> {
    match &schema["type"] {
        Value::String(t) => Some(t.clone()),
        Value::Array(ts) => ts
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null")
            .map(str::to_string),
        _ => None,
    }
}

fn scalar(schema: &Value, text: &str) -> Value {
    match schema_type(schema).as_deref() {
        Some("integer") => text
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or_else(|_| json!(text)),
        Some("number") => serde_json::from_str::<serde_json::Number>(text)
            .map(Value::Number)
            .unwrap_or_else(|_| json!(text)),
        Some("boolean") => match text {
            "true" => json!(true),
            "false" => json!(false),
            _ => json!(text),
        },
        _ => json!(text),
    }
}

// ---------------------------------------------------------------------------
// Recording and the actix guard
// ---------------------------------------------------------------------------

/// What the oracle refused, shared by a fake's server and the fake; fails the
/// test when the fake that owns it is dropped with violations left.
#[derive(Clone, Default)]
pub struct Violations {
    list: Arc<Mutex<Vec<String>>>,
}

impl Violations {
    pub fn record(&self, more: impl IntoIterator<Item = String>) {
        self.list
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(more);
    }

    /// The violations so far, emptied (for tests that provoke them on purpose).
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.list.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Panics (failing the test) if anything was recorded.
    pub fn assert_none(&self) {
        let list = self.take();
        assert!(
            list.is_empty(),
            "the fake PMS saw requests (or sent answers) its vendor's description refuses:\n  {}",
            list.join("\n  ")
        );
    }
}

/// Owned by a fake: checks on drop, unless the test is already failing.
pub struct ViolationGuard(pub Violations);

impl Drop for ViolationGuard {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            self.0.assert_none();
        }
    }
}

/// How a fake answers a request its vendor would refuse: the message → the
/// vendor's 400 in its error shape.
pub type Reject = fn(&str) -> HttpResponse;

/// `App::new().wrap(vendor_oracle::guard(vendor, violations, reject))`.
pub fn guard(vendor: Arc<Vendor>, violations: Violations, reject: Reject) -> Guard {
    Guard {
        vendor,
        violations,
        reject,
    }
}

pub struct Guard {
    vendor: Arc<Vendor>,
    violations: Violations,
    reject: Reject,
}

impl<S, B> Transform<S, ServiceRequest> for Guard
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<BoxBody>;
    type Error = actix_web::Error;
    type Transform = GuardService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(GuardService {
            service: Rc::new(service),
            vendor: self.vendor.clone(),
            violations: self.violations.clone(),
            reject: self.reject,
        }))
    }
}

pub struct GuardService<S> {
    service: Rc<S>,
    vendor: Arc<Vendor>,
    violations: Violations,
    reject: Reject,
}

impl<S, B> Service<ServiceRequest> for GuardService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<BoxBody>;
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self::Response, Self::Error>>;

    actix_web::dev::forward_ready!(service);

    fn call(&self, mut req: ServiceRequest) -> Self::Future {
        let service = self.service.clone();
        let vendor = self.vendor.clone();
        let violations = self.violations.clone();
        let reject = self.reject;
        Box::pin(async move {
            let body = req.extract::<web::Bytes>().await.unwrap_or_default();
            let request = Request {
                method: req.method().as_str().to_string(),
                path: percent_decode(req.path()),
                query: form_pairs(req.query_string().as_bytes()),
                headers: req
                    .headers()
                    .iter()
                    .map(|(n, v)| {
                        (
                            n.as_str().to_ascii_lowercase(),
                            String::from_utf8_lossy(v.as_bytes()).into_owned(),
                        )
                    })
                    .collect(),
                body: body.to_vec(),
            };
            let (matched, problems) = if vendor.is_outside(&request.path) {
                (None, Vec::new())
            } else {
                vendor.check_request(&request)
            };
            if !problems.is_empty() {
                let message = problems.join("; ");
                violations.record(problems.into_iter().map(|p| format!("request: {p}")));
                return Ok(req.into_response(reject(&message)).map_into_boxed_body());
            }
            req.set_payload(actix_web::dev::Payload::from(body));
            let res = service.call(req).await?;
            let (http_req, response) = res.into_parts();
            let status = response.status();
            let headers = response.headers().clone();
            let bytes = actix_web::body::to_bytes(response.into_body())
                .await
                .unwrap_or_default();
            if let Some(matched) = &matched {
                let content_type = headers
                    .get(actix_web::http::header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok());
                let problems =
                    vendor.check_response(matched, &request, status.as_u16(), content_type, &bytes);
                violations.record(problems.into_iter().map(|p| format!("answer: {p}")));
            }
            let mut rebuilt = HttpResponse::build(status);
            for (name, value) in headers.iter() {
                if name != actix_web::http::header::CONTENT_LENGTH {
                    rebuilt.append_header((name.clone(), value.clone()));
                }
            }
            Ok(ServiceResponse::new(http_req, rebuilt.body(bytes)))
        })
    }
}

/// A Swagger 2 operation's `consumes` (else the document's), or `default`.
fn consumes(spec: &Value, doc: &Value, default: &str) -> Vec<String> {
    spec.get("consumes")
        .or_else(|| doc.get("consumes"))
        .and_then(Value::as_array)
        .map(|c| {
            c.iter()
                .filter_map(|m| m.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_else(|| vec![default.to_string()])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[should_panic(expected = "its vendor's description refuses")]
    fn a_fake_dropped_with_violations_fails_the_test() {
        let violations = Violations::default();
        let guard = ViolationGuard(violations.clone());
        violations.record(["request: orders_add: body: /: \"Items\" is wrong".to_string()]);
        drop(guard);
    }

    #[test]
    fn a_fake_dropped_clean_passes() {
        drop(ViolationGuard(Violations::default()));
    }

    /// The subsets hold exactly the operations the adapters call.
    #[test]
    fn each_vendor_describes_the_operations_its_adapter_calls() {
        let mut mews = crate::fake_mews::vendor().operations();
        mews.sort();
        assert_eq!(
            mews,
            [
                "POST /api/connector/v1/configuration/get",
                "POST /api/connector/v1/customers/getAll",
                "POST /api/connector/v1/customers/search",
                "POST /api/connector/v1/orderItems/getAll",
                "POST /api/connector/v1/orders/add",
                "POST /api/connector/v1/payments/addExternal",
                "POST /api/connector/v1/payments/getAll",
                "POST /api/connector/v1/reservations/getAll/2023-06-06",
                "POST /api/connector/v1/resources/getAll",
            ]
        );
        let mut opera = crate::fake_opera::vendor().operations();
        opera.sort();
        assert_eq!(
            opera,
            [
                "GET /csh/v1/hotels/{hotelId}/transactions",
                "GET /csh/v1/services/cashiering/status",
                "GET /rsv/v1/hotels/{hotelId}/reservations",
                "POST /csh/v1/hotels/{hotelId}/reservations/{reservationId}/charges",
                "POST /csh/v1/hotels/{hotelId}/reservations/{reservationId}/payments",
                "POST /oauth/v1/tokens",
            ]
        );
        let mut apaleo = crate::fake_apaleo::vendor().operations();
        apaleo.sort();
        assert_eq!(
            apaleo,
            [
                "GET /booking/v1/reservations",
                "GET /finance/v1/folios",
                "GET /finance/v1/folios/{folioId}/payments",
                "GET /finance/v1/folios/{folioId}/refunds",
                "GET /finance/v1/folios/{id}",
                "POST /finance/v1/folio-actions/{folioId}/charges",
                "POST /finance/v1/folios/{folioId}/payments",
                "POST /finance/v1/folios/{folioId}/refunds",
            ]
        );
    }

    #[test]
    fn openapi_schemas_become_json_schema() {
        let s = json_schema(&json!({
            "type": "object",
            "properties": {
                "a": { "type": "string", "nullable": true, "enum": ["x"] },
                "b": { "$ref": "#/components/schemas/B", "nullable": true },
                "n": { "type": "number", "minimum": 0, "exclusiveMinimum": true },
            },
        }));
        assert_eq!(s["properties"]["a"]["type"], json!(["string", "null"]));
        assert_eq!(s["properties"]["a"]["enum"], json!(["x", null]));
        assert_eq!(s["properties"]["b"]["anyOf"][0], json!({ "type": "null" }));
        assert_eq!(s["properties"]["n"]["exclusiveMinimum"], json!(0));
        assert!(s["properties"]["n"].get("minimum").is_none());
    }

    #[test]
    fn query_arrays_follow_the_described_style() {
        let schema = json!({ "type": "array", "items": { "type": "integer" } });
        assert_eq!(
            parameter_value(&schema, &["1,2"], false).unwrap(),
            json!([1, 2])
        );
        assert_eq!(
            parameter_value(&schema, &["1", "2"], true).unwrap(),
            json!([1, 2])
        );
        assert!(parameter_value(&schema, &["1", "2"], false).is_err());
        assert_eq!(
            parameter_value(&json!({ "type": "boolean" }), &["true"], false).unwrap(),
            json!(true)
        );
    }
}
