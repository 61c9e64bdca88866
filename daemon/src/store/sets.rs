//! Pod sets in the store: their definitions (`pod_sets`), written on create and delete and read
//! at start-up, when every set's watch starts again.

use actix::{Handler, Message};
use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};

use super::conn::{with_conn, write_tx};
use super::schema::pod_sets;
use super::{StoreActor, StoreError};

/// A pod set's definition, as stored.
#[derive(Clone, Debug, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = pod_sets)]
pub struct PodSetRow {
    pub name: String,
    pub cluster: String,
    pub namespace: String,
    pub selector: String,
    pub container: Option<String>,
    pub created_at: NaiveDateTime,
    pub actor: String,
}

impl PodSetRow {
    pub fn created(&self) -> DateTime<Utc> {
        self.created_at.and_utc()
    }
}

/// Stores a new set. `Conflict` when the name is taken.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), StoreError>")]
pub struct InsertSet(pub PodSetRow);

/// Forgets a set. `NotFound` when there is none of that name.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), StoreError>")]
pub struct DeleteSet(pub String);

/// Every set, by name.
#[derive(Debug, Message)]
#[rtype(result = "Result<Vec<PodSetRow>, StoreError>")]
pub struct ListSets;

impl Handler<InsertSet> for StoreActor {
    type Result = Result<(), StoreError>;
    fn handle(&mut self, msg: InsertSet, _: &mut Self::Context) -> Self::Result {
        let row = msg.0;
        self.store.with(true, |conn| {
            write_tx!(conn, c => {
                diesel::insert_into(pod_sets::table)
                    .values(&row)
                    .execute(c)
                    .map_err(|e| match e {
                        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => {
                            StoreError::Conflict(format!("a pod set named {:?} already exists", row.name))
                        }
                        other => other.into(),
                    })?;
                Ok::<_, StoreError>(())
            })
        })
    }
}

impl Handler<DeleteSet> for StoreActor {
    type Result = Result<(), StoreError>;
    fn handle(&mut self, msg: DeleteSet, _: &mut Self::Context) -> Self::Result {
        self.store.with(true, |conn| {
            write_tx!(conn, c => {
                match diesel::delete(pod_sets::table.find(&msg.0)).execute(c)? {
                    0 => Err(StoreError::NotFound),
                    _ => Ok(()),
                }
            })
        })
    }
}

impl Handler<ListSets> for StoreActor {
    type Result = Result<Vec<PodSetRow>, StoreError>;
    fn handle(&mut self, _: ListSets, _: &mut Self::Context) -> Self::Result {
        self.store.with(false, |conn| {
            Ok(with_conn!(conn, c => {
                pod_sets::table
                    .select(PodSetRow::as_select())
                    .order(pod_sets::name)
                    .load(c)?
            }))
        })
    }
}
