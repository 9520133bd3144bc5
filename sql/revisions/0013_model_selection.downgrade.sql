-- Undo revision 0013_model_selection.
DROP TABLE ml_model_candidates;
