//! Statements over many rows: multi-row inserts under both engines' bind-parameter limits and,
//! on PostgreSQL, in one shape whatever the number of rows.
//!
//! Why the shape matters: sqlx prepares each distinct SQL text once per connection and keeps
//! the last 100. A multi-row `VALUES` list or an `IN (...)` list has a new text for every row
//! count, so a receipt batch of 1 to 64 receipts kept missing that cache, and every miss costs
//! PostgreSQL a parse and plan and the writer an extra round trip (Parse/Describe before
//! Bind/Execute). On PostgreSQL the rows therefore travel as one JSON parameter read by
//! `json_populate_recordset`, and lists as one array parameter (`= ANY($1)`): one prepared
//! statement per table, reused by every batch. SQLite runs in the process, with no round
//! trips to save, and keeps the plain statements.

use sea_orm::sea_query::{Expr, ExprTrait, IntoColumnRef, PgFunc, SimpleExpr};
use sea_orm::{
    ActiveModelTrait, ActiveValue, ConnectionTrait, DatabaseTransaction, DbBackend, EntityName,
    EntityTrait, IdenStatic, Iterable, SqlErr, Statement, Value,
};
use serde_json::{Map, Value as Json};

use crate::error::AppError;

/// Bind parameters per statement, under SQLite's 32766 and PostgreSQL's 65535.
pub(crate) const MAX_BIND_PARAMETERS: usize = 30_000;

/// Rows per statement on PostgreSQL, where they travel as one JSON parameter: bounds the
/// parameter's size, not the statement's shape.
const ROWS_PER_JSON_STATEMENT: usize = 5_000;

/// What a conflicting row does to an insert.
#[derive(Debug, Clone, Copy)]
pub(crate) enum OnConflict<'a> {
    /// The insert fails with the unique violation.
    Fail,
    /// Rows whose `columns` are already stored are skipped; the count says how many were
    /// inserted.
    Skip(&'a [&'a str]),
    /// Rows whose `columns` are already stored replace the stored row's other columns (an
    /// upsert); the count says how many were inserted or replaced.
    Replace(&'a [&'a str]),
}

/// Inserts `models` (each with `columns` columns set) in as few statements as the limit allows.
pub(crate) async fn insert_chunked<A>(
    txn: &DatabaseTransaction,
    models: Vec<A>,
    columns: usize,
) -> Result<(), AppError>
where
    A: ActiveModelTrait + Send,
{
    insert_rows(txn, models, columns, OnConflict::Fail)
        .await
        .map(|_| ())
}

/// Inserts `models` like [`insert_chunked`], handling conflicts as `on_conflict` says, and
/// returns how many rows were inserted.
pub(crate) async fn insert_rows<A>(
    txn: &DatabaseTransaction,
    models: Vec<A>,
    columns: usize,
    on_conflict: OnConflict<'_>,
) -> Result<u64, AppError>
where
    A: ActiveModelTrait + Send,
{
    let mut writes = Writes::new(txn);
    let rows = writes.insert(models, columns, on_conflict).await?;
    let counts = writes.send().await?;
    Ok(counts.of(rows))
}

/// Writes to several tables that go to PostgreSQL as one statement (each a data-modifying
/// `WITH` query), so a batch pays one round trip for all of them; on SQLite each is run at
/// once. Statements see nothing of each other's rows until the whole statement is done, so
/// only independent writes belong together (foreign keys are checked at its end).
pub(crate) struct Writes<'t> {
    txn: &'t DatabaseTransaction,
    postgres: bool,
    /// `(slot, SQL with `$ROWS` where the JSON rows go, the JSON rows)`.
    pieces: Vec<(usize, String, String)>,
    /// Rows written per slot, for what already ran.
    counts: Vec<u64>,
}

/// Which of a [`Writes`]' writes a count is for.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Slot(usize);

/// How many rows each write of a [`Writes`] wrote.
#[derive(Debug)]
pub(crate) struct Counts(Vec<u64>);

impl Counts {
    /// Rows written by the write of `slot`.
    pub(crate) fn of(&self, slot: Slot) -> u64 {
        self.0.get(slot.0).copied().unwrap_or(0)
    }
}

/// Where a piece's JSON rows go in its SQL.
const ROWS: &str = "$ROWS";

impl<'t> Writes<'t> {
    /// No writes yet, in `txn`.
    pub(crate) fn new(txn: &'t DatabaseTransaction) -> Self {
        Self {
            txn,
            postgres: txn.get_database_backend() == DbBackend::Postgres,
            pieces: Vec::new(),
            counts: Vec::new(),
        }
    }

    /// The transaction written in.
    pub(crate) fn txn(&self) -> &'t DatabaseTransaction {
        self.txn
    }

    /// Whether writes are gathered into one statement (PostgreSQL).
    pub(crate) fn gathers(&self) -> bool {
        self.postgres
    }

    fn slot(&mut self) -> Slot {
        self.counts.push(0);
        Slot(self.counts.len() - 1)
    }

    /// Inserts `models` (each with `columns` columns set).
    pub(crate) async fn insert<A>(
        &mut self,
        models: Vec<A>,
        columns: usize,
        on_conflict: OnConflict<'_>,
    ) -> Result<Slot, AppError>
    where
        A: ActiveModelTrait + Send,
    {
        let slot = self.slot();
        if models.is_empty() {
            return Ok(slot);
        }
        if self.postgres
            && let Some(pieces) = json_inserts(&models, on_conflict)?
        {
            self.pieces
                .extend(pieces.into_iter().map(|(sql, rows)| (slot.0, sql, rows)));
            return Ok(slot);
        }
        let per_statement = (MAX_BIND_PARAMETERS / columns).max(1);
        let mut models = models.into_iter().peekable();
        while models.peek().is_some() {
            let chunk: Vec<A> = models.by_ref().take(per_statement).collect();
            let insert = <A::Entity as EntityTrait>::insert_many(chunk);
            self.counts[slot.0] += match on_conflict {
                OnConflict::Fail => insert.exec_without_returning(self.txn).await,
                OnConflict::Skip(columns) => {
                    insert
                        .on_conflict(
                            sea_orm::sea_query::OnConflict::columns(
                                columns.iter().map(|c| sea_orm::sea_query::Alias::new(*c)),
                            )
                            .do_nothing()
                            .to_owned(),
                        )
                        .exec_without_returning(self.txn)
                        .await
                }
                OnConflict::Replace(keys) => {
                    let others = <A::Entity as EntityTrait>::Column::iter()
                        .map(|c| c.as_str())
                        .filter(|c| !keys.contains(c))
                        .map(sea_orm::sea_query::Alias::new);
                    insert
                        .on_conflict(
                            sea_orm::sea_query::OnConflict::columns(
                                keys.iter().map(|c| sea_orm::sea_query::Alias::new(*c)),
                            )
                            .update_columns(others)
                            .to_owned(),
                        )
                        .exec_without_returning(self.txn)
                        .await
                }
            }
            .map_err(unique_violation)?;
        }
        Ok(slot)
    }

    /// Adds a PostgreSQL write reading `rows` (a JSON array) where `sql` says `$ROWS`, and
    /// returning a row per row written. Only when [`Writes::gathers`].
    pub(crate) fn push_json(&mut self, sql: String, rows: String) -> Slot {
        let slot = self.slot();
        self.pieces.push((slot.0, sql, rows));
        slot
    }

    /// Sends what is gathered; returns the rows each write wrote.
    pub(crate) async fn send(mut self) -> Result<Counts, AppError> {
        match self.pieces.len() {
            0 => {}
            1 => {
                let (slot, sql, rows) = self.pieces.remove(0);
                let written = self
                    .txn
                    .execute_raw(Statement::from_sql_and_values(
                        DbBackend::Postgres,
                        sql.replace(ROWS, "$1"),
                        [Value::String(Some(rows))],
                    ))
                    .await
                    .map_err(unique_violation)?
                    .rows_affected();
                self.counts[slot] += written;
            }
            _ => {
                let mut with = Vec::with_capacity(self.pieces.len());
                let mut select = Vec::with_capacity(self.pieces.len());
                let mut values = Vec::with_capacity(self.pieces.len());
                let mut slots = Vec::with_capacity(self.pieces.len());
                for (n, (slot, sql, rows)) in self.pieces.drain(..).enumerate() {
                    with.push(format!(
                        "w{n} AS ({} RETURNING 1)",
                        sql.replace(ROWS, &format!("${}", n + 1))
                    ));
                    select.push(format!("(SELECT count(*) FROM w{n}) AS c{n}"));
                    // The rows move into the statement: a batch's documents are its largest part.
                    values.push(Value::String(Some(rows)));
                    slots.push(slot);
                }
                let sql = format!("WITH {} SELECT {}", with.join(", "), select.join(", "));
                let row = self
                    .txn
                    .query_one_raw(Statement::from_sql_and_values(
                        DbBackend::Postgres,
                        sql,
                        values,
                    ))
                    .await
                    .map_err(unique_violation)?
                    .ok_or_else(|| AppError::Internal("a gathered write returned no row".into()))?;
                for (n, slot) in slots.into_iter().enumerate() {
                    let written: i64 = row.try_get("", &format!("c{n}"))?;
                    self.counts[slot] += u64::try_from(written).unwrap_or(0);
                }
            }
        }
        Ok(Counts(self.counts))
    }
}

fn unique_violation(e: sea_orm::DbErr) -> AppError {
    match e.sql_err() {
        Some(SqlErr::UniqueConstraintViolation(detail)) => {
            AppError::Internal(format!("unique constraint violated: {detail}"))
        }
        _ => AppError::from(e),
    }
}

/// The PostgreSQL inserts of `models` as JSON (SQL with `$ROWS`, JSON rows), or `None` when
/// the models do not all set the same columns (left to the plain insert, which fills the gaps
/// with defaults).
fn json_inserts<A>(
    models: &[A],
    on_conflict: OnConflict<'_>,
) -> Result<Option<Vec<(String, String)>>, AppError>
where
    A: ActiveModelTrait,
{
    let columns: Vec<<A::Entity as EntityTrait>::Column> =
        <A::Entity as EntityTrait>::Column::iter()
            .filter(|c| is_given(&models[0].get(*c)))
            .collect();
    let table = <A::Entity as Default>::default().table_name().to_owned();
    let names: Vec<&str> = columns.iter().map(|c| c.as_str()).collect();
    let quoted = names
        .iter()
        .map(|n| format!("\"{n}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let quote_all = |keys: &[&str]| {
        keys.iter()
            .map(|k| format!("\"{k}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let conflict = match on_conflict {
        OnConflict::Fail => String::new(),
        OnConflict::Skip(keys) => format!(" ON CONFLICT ({}) DO NOTHING", quote_all(keys)),
        OnConflict::Replace(keys) => format!(
            " ON CONFLICT ({}) DO UPDATE SET {}",
            quote_all(keys),
            names
                .iter()
                .filter(|n| !keys.contains(n))
                .map(|n| format!("\"{n}\" = EXCLUDED.\"{n}\""))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let sql = format!(
        "INSERT INTO \"{table}\" ({quoted}) SELECT {quoted} \
         FROM json_populate_recordset(NULL::\"{table}\", {ROWS}::json){conflict}"
    );
    let mut pieces = Vec::new();
    for chunk in models.chunks(ROWS_PER_JSON_STATEMENT) {
        let mut rows = Vec::with_capacity(chunk.len());
        for model in chunk {
            // One pass over every column: a model must set exactly the first model's columns.
            // A NULL is left out of the row (`json_populate_recordset` reads a missing field
            // as NULL): less JSON for PostgreSQL to parse, a label row having several.
            let mut row = Map::with_capacity(columns.len());
            let mut given = 0;
            for column in <A::Entity as EntityTrait>::Column::iter() {
                match model.get(column) {
                    ActiveValue::Set(v) | ActiveValue::Unchanged(v) => {
                        let name = column.as_str();
                        if !names.contains(&name) {
                            return Ok(None);
                        }
                        given += 1;
                        let value = json_of(&v, &table, name)?;
                        if !matches!(value, Json::Null) {
                            row.insert(name.to_owned(), value);
                        }
                    }
                    ActiveValue::NotSet => {}
                }
            }
            if given != columns.len() {
                return Ok(None);
            }
            rows.push(Json::Object(row));
        }
        let rows = serde_json::to_string(&Json::Array(rows))
            .map_err(|e| AppError::Internal(format!("rows of {table} as JSON: {e}")))?;
        pieces.push((sql.clone(), rows));
    }
    Ok(Some(pieces))
}

fn is_given(value: &ActiveValue<Value>) -> bool {
    matches!(value, ActiveValue::Set(_) | ActiveValue::Unchanged(_))
}

/// `value` as PostgreSQL reads it back from JSON into the column's type: bytes as `\x` hex
/// (bytea's input form), instants at the microsecond PostgreSQL keeps, truncated as sqlx's
/// binary encoding truncates them, so both paths store the same value.
pub(crate) fn json_of(value: &Value, table: &str, column: &str) -> Result<Json, AppError> {
    const RFC3339_MICROS: &[time::format_description::BorrowedFormatItem<'static>] = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6][offset_hour sign:mandatory]:[offset_minute]"
    );
    const DATE: &[time::format_description::BorrowedFormatItem<'static>] =
        time::macros::format_description!("[year]-[month]-[day]");
    const DATE_TIME: &[time::format_description::BorrowedFormatItem<'static>] = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]"
    );
    let formatted = |r: Result<String, time::error::Format>| {
        r.map(Json::String)
            .map_err(|e| AppError::Internal(format!("{table}.{column}: {e}")))
    };
    Ok(match value {
        Value::Bool(v) => v.map_or(Json::Null, Json::Bool),
        Value::SmallInt(v) => v.map_or(Json::Null, Json::from),
        Value::Int(v) => v.map_or(Json::Null, Json::from),
        Value::BigInt(v) => v.map_or(Json::Null, Json::from),
        Value::String(v) => v.clone().map_or(Json::Null, Json::String),
        Value::Bytes(v) => v.as_ref().map_or(Json::Null, |b| {
            Json::String(format!("\\x{}", hex::encode(b)))
        }),
        Value::Json(v) => v.as_deref().cloned().unwrap_or(Json::Null),
        Value::Uuid(v) => v.map_or(Json::Null, |u| Json::String(u.to_string())),
        Value::TimeDate(v) => match v {
            Some(d) => formatted(d.format(DATE))?,
            None => Json::Null,
        },
        Value::TimeDateTime(v) => match v {
            Some(t) => formatted(t.format(DATE_TIME))?,
            None => Json::Null,
        },
        Value::TimeDateTimeWithTimeZone(v) => match v {
            Some(t) => formatted(t.format(RFC3339_MICROS))?,
            None => Json::Null,
        },
        other => {
            return Err(AppError::Internal(format!(
                "{table}.{column}: no JSON form for {other:?}"
            )));
        }
    })
}

/// `column IN values`: on PostgreSQL `column = ANY($1)` with one array parameter, so the
/// statement keeps its shape whatever the number of values.
pub(crate) fn is_in<C, V>(backend: DbBackend, column: C, values: Vec<V>) -> SimpleExpr
where
    C: IntoColumnRef + Copy,
    V: Into<Value> + sea_orm::sea_query::value::ValueType,
    Vec<V>: Into<Value>,
{
    if backend == DbBackend::Postgres {
        Expr::col(column).eq(PgFunc::any(Expr::val(values)))
    } else {
        Expr::col(column).is_in(values)
    }
}
