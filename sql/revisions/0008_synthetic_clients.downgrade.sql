ALTER TABLE clients DROP COLUMN synthetic;
