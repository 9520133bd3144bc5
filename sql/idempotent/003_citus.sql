-- On a Citus coordinator: distribute what a revision after 0014_citus_distribution added
-- (a table of schema public with a client_id column becomes a distributed table co-located
-- with issues). The function is 0014's (sql/revisions/0014_citus_distribution.upgrade.sql);
-- it does nothing on a plain server, or when every table is already where it belongs. A
-- database that went through 0014 before it had any content has no such function: it
-- needs none (it is not a Citus database).
DO $$
BEGIN
    IF to_regprocedure('public.pgml_flow_citus_distribute(regclass[])') IS NOT NULL THEN
        PERFORM public.pgml_flow_citus_distribute();
    END IF;
END;
$$;
