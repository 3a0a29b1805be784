export { migrate, ensureDatabase, loadMigrations, MigrationError, type StorageEngine } from "./migrate.ts";
