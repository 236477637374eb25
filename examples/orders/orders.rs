//! The orders app: five functions over one in-memory store (an example: orders live only
//! as long as the process, each instance has its own, ids start at 1).
//!
//! | function | trigger | what it does |
//! | --- | --- | --- |
//! | `orders-list` | `GET orders` | the orders this process holds, newest first |
//! | `orders-get` | `GET orders/{id:int}` | one order, or 404 problem |
//! | `orders-create` | `POST orders` | validates, stores, and queues the order (`outQueue`) |
//! | `files` | `GET files/{*path}` (anonymous) | echoes the path |
//! | `cleanup` | timer, every 5 minutes | logs how many orders are held |

use std::sync::{Arc, Mutex, PoisonError};

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use azfn_auth::auth::Claims;
use azfn_auth::extract::{Logger, Outputs, Path, Problem, TimerInfo, Trigger};
use azfn_auth::functions::Functions;
use http::{StatusCode, header};
use serde::Serialize;
use serde_json::Value;

/// One order.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub(crate) struct Order {
    pub(crate) id: u64,
    pub(crate) item: String,
    pub(crate) quantity: u32,
    /// The creator's `sub`.
    pub(crate) owner: String,
}

/// The orders this process holds, oldest first.
#[derive(Debug, Default)]
pub(crate) struct Store {
    orders: Vec<Order>,
    next_id: u64,
}

/// The app's state: the store behind a lock (never held across an await).
pub(crate) type Shared = Arc<Mutex<Store>>;

/// Every function of the app, by folder name.
pub(crate) fn functions() -> Functions {
    Functions::new()
        .function("orders-list", list)
        .function("orders-get", get)
        .function("orders-create", create)
        .function("files", files)
        .function("cleanup", cleanup)
        .with_state(Shared::default())
}

fn store(shared: &Shared) -> std::sync::MutexGuard<'_, Store> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

async fn list(State(shared): State<Shared>) -> Json<Vec<Order>> {
    Json(store(&shared).orders.iter().rev().cloned().collect())
}

async fn get(State(shared): State<Shared>, Path(id): Path<u64>) -> Response {
    match store(&shared).orders.iter().find(|o| o.id == id) {
        Some(order) => Json(order.clone()).into_response(),
        None => Problem::new(StatusCode::NOT_FOUND).detail(format!("No order {id}")).into_response(),
    }
}

/// Checks the body field by field, so the answer names the field at fault.
fn validate(body: &[u8]) -> Result<(String, u32), Problem> {
    let bad = || Problem::new(StatusCode::BAD_REQUEST);
    let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(body) else {
        return Err(bad().detail("The body must be a JSON object"));
    };
    let item = match fields.get("item") {
        Some(Value::String(item)) if (1..=100).contains(&item.chars().count()) => item.clone(),
        Some(_) => return Err(bad().invalid_param("item", "must be a string of 1 to 100 characters")),
        None => return Err(bad().invalid_param("item", "is required")),
    };
    let quantity = match fields.get("quantity") {
        Some(Value::Number(n)) => match n.as_u64().filter(|q| (1..=1000).contains(q)) {
            Some(q) => q as u32,
            None => return Err(bad().invalid_param("quantity", "must be an integer from 1 to 1000")),
        },
        Some(_) => return Err(bad().invalid_param("quantity", "must be an integer from 1 to 1000")),
        None => return Err(bad().invalid_param("quantity", "is required")),
    };
    Ok((item, quantity))
}

async fn create(State(shared): State<Shared>, claims: Claims, body: Bytes) -> Response {
    let (item, quantity) = match validate(&body) {
        Ok(fields) => fields,
        Err(problem) => return problem.into_response(),
    };
    let order = {
        let mut store = store(&shared);
        store.next_id += 1;
        let order = Order { id: store.next_id, item, quantity, owner: claims.subject().unwrap_or("").to_owned() };
        store.orders.push(order.clone());
        order
    };
    let location = format!("/api/orders/{}", order.id);
    (StatusCode::CREATED, Outputs::new().set("outQueue", &order), [(header::LOCATION, location)], Json(order))
        .into_response()
}

async fn files(Path(path): Path<Option<String>>) -> ([(header::HeaderName, &'static str); 1], String) {
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], path.unwrap_or_default())
}

async fn cleanup(State(shared): State<Shared>, Trigger(timer): Trigger<TimerInfo>, log: Logger) {
    let held = store(&shared).orders.len();
    if timer.is_past_due {
        log.warn("cleanup: running late");
    }
    log.log(format!("cleanup: {held} orders"));
}
