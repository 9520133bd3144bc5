-- The views of PostgresML 2.10. The deployed model of a project is its newest deployment
-- (by id: deployments are append-only, and ids never tie where timestamps may).
CREATE OR REPLACE VIEW pgml.overview AS
SELECT p.name,
       d.created_at AS deployed_at,
       p.task,
       m.algorithm,
       m.runtime,
       s.relation_name,
       s.y_column_name,
       s.test_sampling,
       s.test_size
  FROM pgml.projects p
  JOIN pgml.models m ON p.id = m.project_id
  JOIN pgml.deployments d ON d.project_id = p.id AND d.model_id = m.id
  JOIN pgml.snapshots s ON s.id = m.snapshot_id
 ORDER BY d.created_at DESC;

CREATE OR REPLACE VIEW pgml.trained_models AS
SELECT m.id,
       p.name,
       p.task,
       m.algorithm,
       m.runtime,
       m.created_at,
       s.test_sampling,
       s.test_size,
       d.model_id IS NOT NULL AS deployed
  FROM pgml.projects p
  JOIN pgml.models m ON p.id = m.project_id
  JOIN pgml.snapshots s ON s.id = m.snapshot_id
  LEFT JOIN (SELECT DISTINCT ON (project_id) project_id, model_id, created_at
               FROM pgml.deployments
              ORDER BY project_id, id DESC) d ON d.model_id = m.id
 ORDER BY m.created_at DESC;

-- id is the deployed model's (pgml.models.id), as in PostgresML: SQL that joins it to
-- pgml.models gets that model (it was the project's id before revision 0012).
CREATE OR REPLACE VIEW pgml.deployed_models AS
SELECT m.id,
       p.name,
       p.task,
       m.algorithm,
       m.runtime,
       d.created_at AS deployed_at
  FROM pgml.projects p
  JOIN (SELECT DISTINCT ON (project_id) project_id, model_id, created_at
          FROM pgml.deployments
         ORDER BY project_id, id DESC) d ON d.project_id = p.id
  JOIN pgml.models m ON m.id = d.model_id
 ORDER BY p.name;
