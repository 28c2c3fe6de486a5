//! The treasury credits found by their SCT references: an import looks for the credits it
//! holds already with the same TRN or EndToEndId (probably the same movement from another
//! source, which it warns of), and so does every page of the credit list. Many credits carry
//! neither, so both indexes leave out the NULLs.
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Each index: its name, its columns and the column whose NULLs it leaves out.
const INDEXES: [(&str, &str, &str); 2] = [
    ("ix_recon_credit_trn", "creditor_fiscal_code, trn", "trn"),
    (
        "ix_recon_credit_end_to_end",
        "creditor_fiscal_code, end_to_end_id",
        "end_to_end_id",
    ),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for (name, columns, column) in INDEXES {
            db.execute_unprepared(&format!(
                "CREATE INDEX {name} ON recon_credit ({columns}) WHERE {column} IS NOT NULL"
            ))
            .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for (name, _, _) in INDEXES {
            db.execute_unprepared(&format!("DROP INDEX {name}")).await?;
        }
        Ok(())
    }
}
