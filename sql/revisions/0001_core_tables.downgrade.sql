DROP TABLE ml_retraining_events;
DROP TABLE ml_prediction_log;
DROP TABLE pull_requests;
DROP TABLE issues;
DROP TABLE repositories;
DROP TABLE issuetypes;
DROP TABLE clients;
