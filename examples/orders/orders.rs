//! The orders app: five functions over one in-memory store (an example: orders live only
//! as long as the process, each instance has its own, ids start at 1).
//!
//! | function | trigger | what it does |
//! | --- | --- | --- |
//! | `orders-list` | `GET orders` | the orders this process holds, newest first |
//! | `orders-get` | `GET orders/{id:int}` | one order, or 404 problem |
//! | `orders-create` | `POST orders` | takes `Json<NewOrder>`, stores, and queues the order (`outQueue`) |
//! | `files` | `GET files/{*path}` (anonymous) | echoes the path |
//! | `cleanup` | timer, every 5 minutes | logs how many orders are held |
//!
//! A sixth folder, `openapi` (`GET openapi.json`, anonymous), has no handler here: the library
//! serves the app's OpenAPI document there.

use std::sync::{Arc, Mutex, PoisonError};

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use azfn_auth::auth::Claims;
use azfn_auth::extract::{Json, Logger, Outputs, Path, Problem, TimerInfo, Trigger};
use azfn_auth::functions::Functions;
use http::{StatusCode, header};
use serde::{Deserialize, Serialize};

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

/// What `orders-create` takes. The extractor answers a body that does not fit with 422
/// problem+json naming the field (`invalid-params`), a body that is not JSON with 400.
#[derive(Debug, Deserialize)]
pub(crate) struct NewOrder {
    item: ItemName,
    quantity: Quantity,
}

/// 1 to 100 characters.
#[derive(Debug, Deserialize)]
#[serde(try_from = "String")]
struct ItemName(String);

impl TryFrom<String> for ItemName {
    type Error = &'static str;

    fn try_from(item: String) -> Result<Self, Self::Error> {
        match item.chars().count() {
            1..=100 => Ok(Self(item)),
            _ => Err("must be a string of 1 to 100 characters"),
        }
    }
}

/// An integer from 1 to 1000.
#[derive(Debug, Deserialize)]
#[serde(try_from = "u64")]
struct Quantity(u32);

impl TryFrom<u64> for Quantity {
    type Error = &'static str;

    fn try_from(quantity: u64) -> Result<Self, Self::Error> {
        match quantity {
            1..=1000 => Ok(Self(quantity as u32)),
            _ => Err("must be an integer from 1 to 1000"),
        }
    }
}

async fn create(State(shared): State<Shared>, claims: Claims, Json(new): Json<NewOrder>) -> Response {
    let (item, quantity) = (new.item.0, new.quantity.0);
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
