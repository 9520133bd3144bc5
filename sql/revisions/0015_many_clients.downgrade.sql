-- Revision 0015_many_clients, undone: choices are made again at every training.
ALTER TABLE ml_model_candidates DROP COLUMN rows_key;
