-- Revision 0013_model_selection: model choice by validation (pgml_flow/selection.py).
--
-- ml_model_candidates: for a model trained from a spec with candidates, every candidate
-- that was tried for it, its key metric on the validation slice (the rows just before the
-- held-out ones) and which one was chosen; keyed by the model it chose for (client_id,
-- model_id), so the choice stays with the model. One row per candidate.
CREATE TABLE ml_model_candidates (
    client_id        bigint           NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    model_id         bigint           NOT NULL,
    candidate        integer          NOT NULL,
    model_name       text             NOT NULL,
    project          text             NOT NULL,
    label            text             NOT NULL,
    algorithm        text             NOT NULL,
    hyperparams      jsonb            NOT NULL DEFAULT '{}',
    preprocess       jsonb            NOT NULL DEFAULT '{}',
    key_metric       text             NOT NULL,
    validation_value double precision,
    fit_rows         bigint           NOT NULL,
    validation_rows  bigint           NOT NULL,
    seconds          double precision NOT NULL,
    chosen           boolean          NOT NULL,
    error            text,
    created_at       timestamptz      NOT NULL DEFAULT now(),
    CONSTRAINT ml_model_candidates_pkey PRIMARY KEY (client_id, model_id, candidate)
);
COMMENT ON TABLE ml_model_candidates IS
    'Model choice by validation: each candidate tried for a model, its key metric on the validation slice, the chosen one';
ALTER TABLE ml_model_candidates ENABLE ROW LEVEL SECURITY;
