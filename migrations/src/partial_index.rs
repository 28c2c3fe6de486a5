//! Rebuilding an index as partial (leaving out the rows whose column is NULL) or back as
//! whole, the same way on both engines: the migrations that narrow an index share it. Like
//! every migration it is history: what it does must never change (a new shape of index is a
//! new helper).

use sea_orm_migration::prelude::*;

/// An index to rebuild: its name, its columns and the column whose NULLs it leaves out.
pub(crate) type PartialIndex = (&'static str, &'static str, &'static str);

/// Drops each of `indexes` on `table` and creates it again, partial when `partial`.
pub(crate) async fn rebuild(
    manager: &SchemaManager<'_>,
    table: &str,
    indexes: &[PartialIndex],
    partial: bool,
) -> Result<(), DbErr> {
    let db = manager.get_connection();
    for (name, columns, column) in indexes {
        db.execute_unprepared(&format!("DROP INDEX {name}")).await?;
        let only = if partial {
            format!(" WHERE {column} IS NOT NULL")
        } else {
            String::new()
        };
        db.execute_unprepared(&format!("CREATE INDEX {name} ON {table} ({columns}){only}"))
            .await?;
    }
    Ok(())
}
