/*
 * settings.c -- the pgml.* and pgml_flow.* settings, defined so that only a superuser
 * may set the ones that choose code, connections or URLs.
 *
 * Why in C: a setting PostgreSQL does not know is a "placeholder" that any session may
 * SET.  pgml.venv names the directory whose site-packages the in-database Python adds
 * to sys.path, and site.addsitedir() runs the import lines of every .pth file there:
 * whoever sets it runs code as the server's OS user.  pgml_flow.loopback_conninfo
 * chooses the connection (and so the role) a server-side retrain runs as.  Defining
 * both as PGC_SUSET here makes PostgreSQL refuse SET, ALTER ROLE/DATABASE SET and
 * set_config() from non-superusers; a value a non-superuser SET as a placeholder before
 * this library was loaded is discarded with a WARNING when it is defined (PostgreSQL 15
 * re-applies placeholder values with the privileges of the role that set them).
 * Reserving the prefixes makes any other pgml.* / pgml_flow.* name an error instead of
 * a new placeholder.  The embedded cluster preloads this library
 * (shared_preload_libraries), so the settings exist before any session starts;
 * pgml._bootstrap() trusts pgml.venv only when pg_settings shows it defined with a
 * superuser-only context.
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/guc.h"

#include "settings.h"

static char *venv_setting = NULL;
static char *loopback_setting = NULL;
static char *client_id_setting = NULL;
static bool native_scoring_setting = true;
static int	max_parallel_fits_setting = 2;
static int	train_threads_setting = 0;

PG_FUNCTION_INFO_V1(pgml_native_settings_loaded);

/* A placeholder of the same name is replaced; a real definition (the PostgresML
 * extension's own pgml.venv, when both are loaded) is left alone. */
static bool
defined_elsewhere(const char *name)
{
	int			flags = GetConfigOptionFlags(name, true);

	return GetConfigOption(name, true, false) != NULL && !(flags & GUC_CUSTOM_PLACEHOLDER);
}

static bool
check_absolute_path(char **newval, void **extra, GucSource source)
{
	(void) extra;
	(void) source;
	if (*newval == NULL || (*newval)[0] == '\0' || (*newval)[0] == '/')
		return true;
	GUC_check_errdetail("pgml.venv must be an absolute path (or empty for the server's own Python).");
	return false;
}

static bool
check_client_id(char **newval, void **extra, GucSource source)
{
	const char *p;

	(void) extra;
	(void) source;
	if (*newval == NULL)
		return true;
	for (p = *newval; *p; p++)
		if (*p < '0' || *p > '9')
		{
			GUC_check_errdetail("pgml_flow.client_id must be a client id (digits), or empty.");
			return false;
		}
	return true;
}

void
pgml_define_settings(void)
{
	if (!defined_elsewhere("pgml.venv"))
		DefineCustomStringVariable("pgml.venv",
								   "Virtualenv whose site-packages the in-database Python imports from.",
								   "Superuser only: whoever chooses this path chooses code that runs "
								   "as the server's OS user.",
								   &venv_setting, "", PGC_SUSET, 0,
								   check_absolute_path, NULL, NULL);
	if (!defined_elsewhere("pgml.native_scoring"))
		DefineCustomBoolVariable("pgml.native_scoring",
								 "Serve predictions with the native scorer where it is installed.",
								 "Read by pgml-flow db upgrade; off keeps the database on the Python path.",
								 &native_scoring_setting, true, PGC_SUSET, 0,
								 NULL, NULL, NULL);
	/*
	 * The cores one pgml.train may take (pgml_flow/engine/parallel.py reads them from
	 * pg_settings, and only with this superuser-only context): a tenant cannot make one
	 * backend take the whole server.
	 */
	if (!defined_elsewhere("pgml.max_parallel_fits"))
		DefineCustomIntVariable("pgml.max_parallel_fits",
								"Fits of one pgml.train search run at once, each in a process of its own.",
								"Superuser only; never more than the server's usable cores. "
								"1 runs them one after another.",
								&max_parallel_fits_setting, 2, 1, 1024, PGC_SUSET, 0,
								NULL, NULL, NULL);
	if (!defined_elsewhere("pgml.train_threads"))
		DefineCustomIntVariable("pgml.train_threads",
								"Library threads of one pgml.train fit (0: one per usable core).",
								"Superuser only; never more than the server's usable cores. "
								"A search's parallel fits use one thread each.",
								&train_threads_setting, 0, 0, 1024, PGC_SUSET, 0,
								NULL, NULL, NULL);
	DefineCustomStringVariable("pgml_flow.loopback_conninfo",
							   "libpq conninfo a server-side retrain (pgml_flow.run_job) connects with.",
							   "Superuser only: it chooses the role the retrain runs as.",
							   &loopback_setting, "", PGC_SUSET, GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);
	DefineCustomStringVariable("pgml_flow.client_id",
							   "The client an unmapped admin looks at the BI surface as.",
							   "Ignored for BI logins: pgml_flow.current_client_id() resolves them "
							   "from session_user.",
							   &client_id_setting, "", PGC_USERSET, 0,
							   check_client_id, NULL, NULL);
	MarkGUCPrefixReserved("pgml");
	MarkGUCPrefixReserved("pgml_flow");
}

/* Calling this loads the library, and with it the definitions above. */
Datum
pgml_native_settings_loaded(PG_FUNCTION_ARGS)
{
	(void) fcinfo;
	PG_RETURN_BOOL(true);
}
