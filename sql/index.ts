export { migrate, ensureDatabase, loadMigrations, MigrationError } from "./migrate.ts";
