/*
 * pgml_native.c -- PostgreSQL glue for the native model evaluator.
 *
 * Serving functions look the deployed model up in pgml-flow's tables and
 * evaluate its compiled blob (path 'native' in pgml.files) with model.c.  A
 * model without a blob is passed to the plpython implementation
 * (pgml._py_predict and friends) through fmgr, so callers need not care.  So
 * is every call the C scorer does not answer (serve_scalar): a wrong feature
 * count, a NaN or infinity the model's library refuses (its input rules),
 * predict_proba of a regression model: the Python path raises the error, so
 * both paths give the same result or the same error for every input.
 *
 * Caching, per backend:
 *   - project name -> deployed model id.  Deployments change, so the mapping is
 *     re-read once per statement (statement start time + local transaction
 *     id): a redeploy committed elsewhere is seen by the next statement, and a
 *     million-row scan pays one SPI query, not one per row.
 *   - model id -> parsed model, an LRU bounded in bytes by
 *     pgml.native_cache_mb.  Model ids are immutable (a model's files never
 *     change), so positive entries never need revalidation.  "No native blob"
 *     is remembered for the statement only, since a blob may be added later.
 * SPI is entered only on a cache miss, and in read-only mode so the same code
 * works in parallel workers (which may not bump the command counter).
 *
 * The ROW form (pgml.predict(project, record)) reads the record's attributes
 * by the names of the model's input columns (blob row section, version 2) and
 * applies the training snapshot's preprocessing in C (model.c); see "row form"
 * below for how it stays identical to the Python path.
 */
#include "postgres.h"

#include <float.h>

#include "access/htup_details.h"
#include "access/tupdesc.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "common/shortest_dec.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "lib/ilist.h"
#include "miscadmin.h"
#include "storage/proc.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/float.h"
#include "utils/fmgrprotos.h"
#include "utils/guc.h"
#include "mb/pg_wchar.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/typcache.h"

#include "model.h"
#include "settings.h"

PG_MODULE_MAGIC;

#if PG_VERSION_NUM >= 170000
#define MY_LXID (MyProc->vxid.lxid)
#else
#define MY_LXID (MyProc->lxid)
#endif

#define STACK_FEATURES 256
#define PROJECT_SLOTS 64

void _PG_init(void);

PG_FUNCTION_INFO_V1(pgml_native_eval);
PG_FUNCTION_INFO_V1(pgml_native_eval_proba);
PG_FUNCTION_INFO_V1(pgml_native_predict_project);
PG_FUNCTION_INFO_V1(pgml_native_predict_model);
PG_FUNCTION_INFO_V1(pgml_native_predict_proba_project);
PG_FUNCTION_INFO_V1(pgml_native_predict_proba_model);
PG_FUNCTION_INFO_V1(pgml_native_predict_batch_model);
PG_FUNCTION_INFO_V1(pgml_native_deployed_model_id);
PG_FUNCTION_INFO_V1(pgml_native_predict_row_project);
PG_FUNCTION_INFO_V1(pgml_native_predict_row_model);
PG_FUNCTION_INFO_V1(pgml_native_cache_stats);
PG_FUNCTION_INFO_V1(pgml_native_cache_reset);
PG_FUNCTION_INFO_V1(pgml_native_word_count);
PG_FUNCTION_INFO_V1(pgml_native_real_digits);

static int native_cache_mb = 256;

/* ------------------------------------------------------------------ stamps */

typedef struct
{
	TimestampTz ts;
	LocalTransactionId lxid;
} StmtStamp;

static inline StmtStamp
current_stamp(void)
{
	StmtStamp s;

	s.ts = GetCurrentStatementStartTimestamp();
	s.lxid = MY_LXID;
	return s;
}

static inline bool
same_stamp(StmtStamp a, StmtStamp b)
{
	return a.ts == b.ts && a.lxid == b.lxid;
}

static const StmtStamp NO_STAMP = {0, InvalidLocalTransactionId};

/* ------------------------------------------------------------------ caches */

typedef struct ModelEntry
{
	int64		model_id;		/* hash key */
	pgmln_model *model;			/* NULL: no native blob (as of `checked`) */
	Size		bytes;
	int64		hits;
	TimestampTz last_used;
	StmtStamp	checked;
	dlist_node	lru;
	bool		in_lru;
} ModelEntry;

typedef struct
{
	char	   *name;			/* NULL: free slot */
	int			len;
	int64		model_id;		/* 0: project has no deployment */
	StmtStamp	checked;
} ProjectSlot;

static MemoryContext CacheContext = NULL;	/* models, project names */
static MemoryContext FmgrContext = NULL;	/* fallback FmgrInfos */
static HTAB *model_hash = NULL;
static dlist_head lru_list = DLIST_STATIC_INIT(lru_list);
static Size cache_bytes = 0;
static ModelEntry *last_entry = NULL;
static ProjectSlot projects[PROJECT_SLOTS];
static int	last_project = -1;
static int	next_project_slot = 0;
static SPIPlanPtr deployed_plan = NULL;
static SPIPlanPtr files_plan = NULL;

static void
ensure_cache(void)
{
	HASHCTL		ctl;

	if (CacheContext == NULL)
		CacheContext = AllocSetContextCreate(TopMemoryContext, "pgml_native model cache",
											 ALLOCSET_DEFAULT_SIZES);
	if (model_hash != NULL)
		return;
	memset(&ctl, 0, sizeof ctl);
	ctl.keysize = sizeof(int64);
	ctl.entrysize = sizeof(ModelEntry);
	ctl.hcxt = CacheContext;
	model_hash = hash_create("pgml_native models", 64, &ctl,
							 HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	dlist_init(&lru_list);
	cache_bytes = 0;
}

static void *
context_alloc(void *ctx, size_t size)
{
	return MemoryContextAllocExtended((MemoryContext) ctx, size,
									  MCXT_ALLOC_HUGE | MCXT_ALLOC_NO_OOM);
}

static void
drop_entry(ModelEntry *e)
{
	if (e->in_lru)
	{
		dlist_delete(&e->lru);
		e->in_lru = false;
	}
	if (e->model)
	{
		cache_bytes -= e->bytes;
		pfree(e->model);
		e->model = NULL;
	}
	if (last_entry == e)
		last_entry = NULL;
	hash_search(model_hash, &e->model_id, HASH_REMOVE, NULL);
}

/* evict least recently used models until under the limit, never `keep` */
static void
evict_to_limit(ModelEntry *keep)
{
	Size		limit = (Size) native_cache_mb * 1024 * 1024;

	while (cache_bytes > limit && !dlist_is_empty(&lru_list))
	{
		ModelEntry *tail = dlist_tail_element(ModelEntry, lru, &lru_list);

		if (tail == keep)
			break;
		drop_entry(tail);
	}
}

/* ------------------------------------------------------------------ errors */

static void
raise_parse_error(int rc, const char *what, const char *err)
{
	if (rc == PGMLN_ERR_NOMEM)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory loading %s", what),
				 errdetail("%s", err)));
	ereport(ERROR,
			(errcode(ERRCODE_DATA_CORRUPTED),
			 errmsg("%s is not a valid pgml_native blob: %s", what, err),
			 errhint("Recompile the model with pgml_flow.engine.native.compile_model, or delete "
					 "its 'native' rows in pgml.files so it is served by the Python path.")));
}

/* ------------------------------------------------------------------ SPI */

/*
 * SPI_connect, then run a one-parameter read-only query through a plan prepared
 * once per backend and kept in *plan.  The caller reads SPI_tuptable and calls
 * SPI_finish.
 */
static void
spi_lookup(SPIPlanPtr *plan, const char *query, Oid argtype, Datum arg, long limit,
		   const char *what)
{
	char		nulls = ' ';
	int			rc;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "pgml_native: SPI_connect failed");
	if (*plan == NULL)
	{
		SPIPlanPtr	prepared = SPI_prepare(query, 1, &argtype);

		if (prepared == NULL)
			elog(ERROR, "pgml_native: could not prepare %s: %s", what,
				 SPI_result_code_string(SPI_result));
		SPI_keepplan(prepared);
		*plan = prepared;
	}
	rc = SPI_execute_plan(*plan, &arg, &nulls, true, limit);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "pgml_native: %s failed: %s", what, SPI_result_code_string(rc));
}

/* Deployed model of a project, 0 if none; runs SPI (caller checks caches). */
static int64
lookup_deployed(const char *name, int len)
{
	Datum		arg;
	int64		result = 0;

	arg = PointerGetDatum(cstring_to_text_with_len(name, len));
	spi_lookup(&deployed_plan,
			   "SELECT d.model_id::bigint FROM pgml.deployments d "
			   "JOIN pgml.projects p ON p.id = d.project_id "
			   "WHERE p.name = $1 ORDER BY d.id DESC LIMIT 1",
			   TEXTOID, arg, 1, "deployment lookup");
	if (SPI_processed > 0)
	{
		bool		isnull;
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

		if (!isnull)
			result = DatumGetInt64(d);
	}
	SPI_finish();
	return result;
}

/*
 * Concatenate the 'native' parts of a model into a buffer in the caller's
 * memory context; NULL if the model has none.
 */
static char *
fetch_blob(int64 model_id, Size *len)
{
	MemoryContext caller = CurrentMemoryContext;
	Datum		arg = Int64GetDatum(model_id);
	char	   *buf = NULL;
	Size		total = 0;

	spi_lookup(&files_plan,
			   "SELECT data FROM pgml.files "
			   "WHERE model_id = $1 AND path = 'native' ORDER BY part",
			   INT8OID, arg, 0, "model file lookup");
	if (SPI_processed > 0)
	{
		uint64		n = SPI_processed;
		bytea	  **parts = (bytea **) palloc(sizeof(bytea *) * n);
		Size		off = 0;

		for (uint64 i = 0; i < n; i++)
		{
			bool		isnull;
			Datum		d = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1,
										  &isnull);

			parts[i] = isnull ? NULL : DatumGetByteaPP(d);
			if (parts[i])
				total += VARSIZE_ANY_EXHDR(parts[i]);
		}
		buf = MemoryContextAllocHuge(caller, total > 0 ? total : 1);
		for (uint64 i = 0; i < n; i++)
			if (parts[i])
			{
				memcpy(buf + off, VARDATA_ANY(parts[i]), VARSIZE_ANY_EXHDR(parts[i]));
				off += VARSIZE_ANY_EXHDR(parts[i]);
			}
	}
	SPI_finish();
	*len = total;
	return buf;
}

/* ------------------------------------------------------------------ lookups */

/* parsed model for a model id, or NULL when it has no native blob */
static pgmln_model *
get_model(int64 model_id)
{
	ModelEntry *e;
	bool		found;
	StmtStamp	now;
	char	   *blob;
	Size		len;
	pgmln_model *model;
	char		err[256];
	int			rc;

	if (last_entry != NULL && last_entry->model_id == model_id && last_entry->model != NULL)
	{
		last_entry->hits++;
		last_entry->last_used = GetCurrentStatementStartTimestamp();
		return last_entry->model;
	}
	ensure_cache();
	now = current_stamp();
	e = (ModelEntry *) hash_search(model_hash, &model_id, HASH_FIND, NULL);
	if (e != NULL)
	{
		if (e->model != NULL)
		{
			e->hits++;
			e->last_used = GetCurrentStatementStartTimestamp();
			dlist_move_head(&lru_list, &e->lru);
			last_entry = e;
			return e->model;
		}
		if (same_stamp(e->checked, now))
			return NULL;
	}

	blob = fetch_blob(model_id, &len);

	e = (ModelEntry *) hash_search(model_hash, &model_id, HASH_ENTER, &found);
	if (!found)
	{
		e->model = NULL;
		e->bytes = 0;
		e->hits = 0;
		e->in_lru = false;
		e->last_used = 0;
		e->checked = NO_STAMP;
	}
	if (blob == NULL)
	{
		e->checked = now;		/* remember "no blob" for this statement */
		return NULL;
	}
	rc = pgmln_parse(blob, len, context_alloc, CacheContext, &model, err, sizeof err);
	pfree(blob);
	if (rc != PGMLN_OK)
	{
		char		what[64];

		snprintf(what, sizeof what, "model " INT64_FORMAT, model_id);
		raise_parse_error(rc, what, err);
	}
	e->model = model;
	e->bytes = pgmln_model_bytes(model);
	e->hits = 1;
	e->last_used = GetCurrentStatementStartTimestamp();
	e->checked = now;
	dlist_push_head(&lru_list, &e->lru);
	e->in_lru = true;
	cache_bytes += e->bytes;
	evict_to_limit(e);
	last_entry = e;
	return model;
}

/*
 * Deployed model id of a project, re-read once per statement.  With missing_ok, a
 * project without a deployment (or no project at all) gives 0: the serving functions
 * then hand the call to the Python path, whose error tells the two cases apart.
 */
static int64
deployed_model(text *project, bool missing_ok)
{
	const char *name = VARDATA_ANY(project);
	int			len = VARSIZE_ANY_EXHDR(project);
	StmtStamp	now = current_stamp();
	int			slot = -1;
	ProjectSlot *p;

	if (last_project >= 0 && projects[last_project].len == len &&
		memcmp(projects[last_project].name, name, len) == 0)
		slot = last_project;
	else
		for (int i = 0; i < PROJECT_SLOTS; i++)
			if (projects[i].name != NULL && projects[i].len == len &&
				memcmp(projects[i].name, name, len) == 0)
			{
				slot = i;
				break;
			}
	if (slot >= 0 && same_stamp(projects[slot].checked, now))
	{
		last_project = slot;
		p = &projects[slot];
	}
	else
	{
		int64		id = lookup_deployed(name, len);

		ensure_cache();
		if (slot < 0)
		{
			slot = next_project_slot;
			next_project_slot = (next_project_slot + 1) % PROJECT_SLOTS;
			if (projects[slot].name)
				pfree(projects[slot].name);
			projects[slot].name = NULL;
			projects[slot].name = MemoryContextAlloc(CacheContext, len + 1);
			memcpy(projects[slot].name, name, len);
			projects[slot].name[len] = '\0';
			projects[slot].len = len;
		}
		projects[slot].model_id = id;
		projects[slot].checked = now;
		last_project = slot;
		p = &projects[slot];
	}
	if (p->model_id == 0 && !missing_ok)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("no deployed model for project \"%.*s\"", len, name),
				 errhint("Train one with pgml.train('%.*s', ...) or deploy one with "
						 "pgml.deploy(...).", len, name)));
	return p->model_id;
}

/* ------------------------------------------------------------------ arrays */

/*
 * Read a real[] into floats without detoasting copies: short-header (packed)
 * arrays hold the same bytes after a 1-byte header, so the data can be
 * located directly.  NULL elements become NaN.  Returns the element count, or
 * -1 - count when an element is NULL (the serving functions then hand the call
 * to the Python path, which raises PostgresML's error: NULL is no feature
 * value); *out is `stackbuf` when it fits, else palloc'd.
 */
static int
read_features(Datum d, float *stackbuf, int stackn, float **out)
{
	struct varlena *v = PG_DETOAST_DATUM_PACKED(d);
	const char *p = VARDATA_ANY(v);
	int32		ndim,
				dataoffset;
	Oid			elemtype;
	int			dims[MAXDIM];
	int			nitems;
	const char *data;
	const bits8 *bitmap = NULL;
	float	   *buf;
	bool		has_null = false;

	memcpy(&ndim, p, sizeof(int32));
	memcpy(&dataoffset, p + sizeof(int32), sizeof(int32));
	memcpy(&elemtype, p + 2 * sizeof(int32), sizeof(Oid));
	if (elemtype != FLOAT4OID)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("features must be real[], got an array of type %s",
						format_type_be(elemtype)),
				 errhint("Cast the features: ARRAY[...]::real[].")));
	if (ndim < 0 || ndim > MAXDIM)
		elog(ERROR, "pgml_native: invalid array dimensions %d", ndim);
	if (ndim == 0)
	{
		*out = stackbuf;
		return 0;
	}
	memcpy(dims, p + sizeof(ArrayType) - VARHDRSZ, sizeof(int) * ndim);
	nitems = ArrayGetNItems(ndim, dims);
	if (dataoffset != 0)
	{
		bitmap = (const bits8 *) (p + sizeof(ArrayType) - VARHDRSZ + 2 * sizeof(int) * ndim);
		data = p + dataoffset - VARHDRSZ;
	}
	else
		data = p + ARR_OVERHEAD_NONULLS(ndim) - VARHDRSZ;
	buf = nitems <= stackn ? stackbuf : (float *) palloc(sizeof(float) * (Size) nitems);
	if (bitmap == NULL)
		memcpy(buf, data, sizeof(float) * (Size) nitems);
	else
	{
		for (int i = 0; i < nitems; i++)
		{
			if (bitmap[i / 8] & (1 << (i % 8)))
			{
				memcpy(&buf[i], data, sizeof(float));
				data += sizeof(float);
			}
			else
			{
				buf[i] = get_float4_nan();
				has_null = true;
			}
		}
	}
	*out = buf;
	return has_null ? -1 - nitems : nitems;
}

static ArrayType *
float4_array(const double *v, int n)
{
	Size		nbytes = ARR_OVERHEAD_NONULLS(1) + sizeof(float4) * (Size) n;
	ArrayType  *a = (ArrayType *) palloc(nbytes);
	float4	   *out;

	SET_VARSIZE(a, nbytes);
	a->ndim = 1;
	a->dataoffset = 0;
	a->elemtype = FLOAT4OID;
	ARR_DIMS(a)[0] = n;
	ARR_LBOUND(a)[0] = 1;
	out = (float4 *) ARR_DATA_PTR(a);
	for (int i = 0; i < n; i++)
		out[i] = (float4) v[i];
	return a;
}

static void
describe(char *buf, size_t n, int64 model_id)
{
	if (model_id > 0)
		snprintf(buf, n, "model " INT64_FORMAT, model_id);
	else
		snprintf(buf, n, "the model");
}

static void
check_features(const pgmln_model *m, int64 model_id, int nitems)
{
	if (nitems != pgmln_num_features(m))
	{
		char		what[64];

		describe(what, sizeof what, model_id);
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s expects %d features, got %d", what, pgmln_num_features(m), nitems),
				 errhint("Pass one value per feature, in the column order the model was "
						 "trained on.")));
	}
}

/*
 * pgml.native_eval's answer to a value the blob's input rules refuse (the
 * serving functions hand such rows to the Python path instead, whose error
 * names the algorithm).  Blobs without input rules are scored as before.
 */
static void
refuse_input(int status, int feature)
{
	if (status == PGMLN_REFUSED_NAN)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("feature %d is NaN or NULL, a missing value the model cannot score",
						feature + 1),
				 errhint("Impute it in the query or in the model's preprocess.")));
	if (status == PGMLN_REFUSED_INF)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("feature %d is an infinity, which the model cannot score", feature + 1),
				 errhint("Replace or clip it in the query, or leave the row out.")));
}

static double
eval_scalar(const pgmln_model *m, int64 model_id, Datum features)
{
	float		stackbuf[STACK_FEATURES];
	float	   *x;
	int			n,
				feature,
				status;
	double		v;

	if (!pgmln_has_scalar(m))
	{
		char		what[64];

		describe(what, sizeof what, model_id);
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("%s predicts %d outputs, not one value", what, pgmln_vector_width(m)),
				 errhint("Use pgml.predict_joint for multi-output models.")));
	}
	n = read_features(features, stackbuf, STACK_FEATURES, &x);
	if (n < 0)
		n = -1 - n;				/* pgml.native_eval: a NULL is NaN */
	check_features(m, model_id, n);
	status = pgmln_predict_checked(m, x, &v, &feature);
	if (status == PGMLN_UNDECIDED)
		v = pgmln_predict_row(m, x);
	else
		refuse_input(status, feature);
	return v;
}

static ArrayType *
eval_vector(const pgmln_model *m, int64 model_id, Datum features)
{
	float		stackbuf[STACK_FEATURES];
	double		outbuf[64];
	double	   *out;
	float	   *x;
	int			n,
				feature,
				status,
				w = pgmln_vector_width(m);

	if (pgmln_task(m) != PGMLN_TASK_CLASSIFICATION)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("predict_proba needs a classification model; this one is regression "
						"(use pgml.predict)")));
	if (w == 0)
	{
		char		what[64];

		describe(what, sizeof what, model_id);
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("%s is a classifier without probabilities", what),
				 errhint("Use pgml.predict for the class, or train a model with "
						 "predict_proba (e.g. logistic regression).")));
	}
	n = read_features(features, stackbuf, STACK_FEATURES, &x);
	if (n < 0)
		n = -1 - n;				/* pgml.native_eval: a NULL is NaN */
	check_features(m, model_id, n);
	out = w <= 64 ? outbuf : (double *) palloc(sizeof(double) * w);
	status = pgmln_outputs_checked(m, x, out, &feature);
	if (status == PGMLN_UNDECIDED)
		pgmln_outputs_row(m, x, out);
	else
		refuse_input(status, feature);
	return float4_array(out, w);
}

/*
 * The serving functions' scoring: false when the C scorer does not answer and
 * the Python path must (which then raises the error the user sees, or
 * answers): a feature count that does not match, a NaN or infinity the
 * model's input rules refuse (or any, for blobs without rules), a model with
 * no scalar output; for predict_proba also a regression model, and a
 * classifier without probabilities (Python normalises its decision scores).
 * Identical errors on both paths, at no cost on the hot path.
 */
static bool
serve_scalar(const pgmln_model *m, Datum features, double *out)
{
	float		stackbuf[STACK_FEATURES];
	float	   *x;
	int			feature;

	if (!pgmln_has_scalar(m) ||
		read_features(features, stackbuf, STACK_FEATURES, &x) != pgmln_num_features(m))
		return false;
	return pgmln_predict_checked(m, x, out, &feature) == PGMLN_SCORED;
}

static ArrayType *
serve_vector(const pgmln_model *m, Datum features)
{
	float		stackbuf[STACK_FEATURES];
	double		outbuf[64];
	double	   *out;
	float	   *x;
	int			feature,
				w = pgmln_vector_width(m);

	if (pgmln_task(m) != PGMLN_TASK_CLASSIFICATION || w == 0 ||
		read_features(features, stackbuf, STACK_FEATURES, &x) != pgmln_num_features(m))
		return NULL;
	out = w <= 64 ? outbuf : (double *) palloc(sizeof(double) * w);
	if (pgmln_outputs_checked(m, x, out, &feature) != PGMLN_SCORED)
		return NULL;
	return float4_array(out, w);
}

/* ------------------------------------------------------------------ fallback */

typedef struct
{
	const char *signature;
	Oid			oid;
	StmtStamp	checked;
	FmgrInfo	flinfo;
} Fallback;

static Fallback fb_predict_text = {.signature = "pgml._py_predict(text,real[])"};
static Fallback fb_predict_id = {.signature = "pgml._py_predict(bigint,real[])"};
static Fallback fb_proba_text = {.signature = "pgml._py_predict_proba(text,real[])"};
static Fallback fb_proba_id = {.signature = "pgml._py_predict_proba(bigint,real[])"};
static Fallback fb_batch_id = {.signature = "pgml._py_predict_batch(bigint,real[])"};
static Fallback fb_row_text = {.signature = "pgml._py_predict_row(text,json)"};
static Fallback fb_row_id = {.signature = "pgml._py_predict_row(bigint,json)"};

/*
 * Call the Python implementation with the outer call's first argument and
 * `arg1`.  The OID is looked up by signature once per statement (a DROP +
 * CREATE changes it; CREATE OR REPLACE does not).
 */
static Datum
call_fallback_with(Fallback *fb, FunctionCallInfo outer, int64 model_id, Datum arg1)
{
	StmtStamp	now = current_stamp();
	LOCAL_FCINFO(fc, 2);
	Datum		result;

	if (!OidIsValid(fb->oid) || !same_stamp(fb->checked, now))
	{
		LOCAL_FCINFO(lookup, 1);
		Datum		oid;

		InitFunctionCallInfoData(*lookup, NULL, 1, InvalidOid, NULL, NULL);
		lookup->args[0].value = CStringGetTextDatum(fb->signature);
		lookup->args[0].isnull = false;
		oid = to_regprocedure(lookup);
		if (lookup->isnull)
		{
			char		what[64];

			describe(what, sizeof what, model_id);
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_FUNCTION),
					 errmsg("%s has no native blob and the Python fallback %s does not exist",
							what, fb->signature),
					 errhint("Install pgml-flow's SQL functions (pgml-flow db upgrade), or "
							 "compile the model natively.")));
		}
		if (DatumGetObjectId(oid) != fb->oid)
		{
			if (FmgrContext == NULL)
				FmgrContext = AllocSetContextCreate(TopMemoryContext, "pgml_native fallbacks",
													ALLOCSET_SMALL_SIZES);
			fb->oid = InvalidOid;
			fmgr_info_cxt(DatumGetObjectId(oid), &fb->flinfo, FmgrContext);
			fb->oid = DatumGetObjectId(oid);
		}
		fb->checked = now;
	}
	InitFunctionCallInfoData(*fc, &fb->flinfo, 2, outer->fncollation, NULL, NULL);
	fc->args[0] = outer->args[0];
	fc->args[1].value = arg1;
	fc->args[1].isnull = false;
	result = FunctionCallInvoke(fc);
	outer->isnull = fc->isnull;
	return result;
}

static Datum
call_fallback(Fallback *fb, FunctionCallInfo outer, int64 model_id)
{
	return call_fallback_with(fb, outer, model_id, outer->args[1].value);
}

/* ------------------------------------------------------------------ native_eval */

typedef struct
{
	Size		len;
	uint64		checksum;
	pgmln_model *model;
} EvalCache;

/*
 * Parsed model for a bytea argument, cached in fn_extra for the query.  The
 * blob's own CRC (its trailer) plus its length identify the content; a blob
 * that differs is parsed, i.e. fully validated, again.
 */
static pgmln_model *
eval_model(FunctionCallInfo fcinfo)
{
	bytea	   *blob = PG_GETARG_BYTEA_PP(0);
	Size		len = VARSIZE_ANY_EXHDR(blob);
	uint64		sum = pgmln_blob_checksum(VARDATA_ANY(blob), len);
	EvalCache  *c = (EvalCache *) fcinfo->flinfo->fn_extra;
	char		err[256];
	int			rc;

	if (c == NULL)
	{
		c = MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(EvalCache));
		fcinfo->flinfo->fn_extra = c;
	}
	if (c->model != NULL && c->len == len && c->checksum == sum)
		return c->model;
	if (c->model != NULL)
	{
		pfree(c->model);
		c->model = NULL;
	}
	rc = pgmln_parse(VARDATA_ANY(blob), len, context_alloc, fcinfo->flinfo->fn_mcxt, &c->model,
					 err, sizeof err);
	if (rc != PGMLN_OK)
		raise_parse_error(rc, "the model argument", err);
	c->len = len;
	c->checksum = sum;
	return c->model;
}

Datum
pgml_native_eval(PG_FUNCTION_ARGS)
{
	pgmln_model *m = eval_model(fcinfo);

	PG_RETURN_FLOAT4((float4) eval_scalar(m, 0, PG_GETARG_DATUM(1)));
}

Datum
pgml_native_eval_proba(PG_FUNCTION_ARGS)
{
	pgmln_model *m = eval_model(fcinfo);

	PG_RETURN_ARRAYTYPE_P(eval_vector(m, 0, PG_GETARG_DATUM(1)));
}

/* ------------------------------------------------------------------ serving */

/*
 * pgml.predict and pgml.predict_proba of a model id: a project's deployed model (0 for
 * none) or the id given; what the C scorer does not answer goes to the Python path fb.
 * Id 0 is no model (pgml.models ids start at 1): nothing to look up.
 */
static Datum
predict_scalar(FunctionCallInfo fcinfo, int64 id, Fallback *fb)
{
	pgmln_model *m = id ? get_model(id) : NULL;
	double		v;

	if (m == NULL || !serve_scalar(m, PG_GETARG_DATUM(1), &v))
		return call_fallback(fb, fcinfo, id);
	PG_RETURN_FLOAT4((float4) v);
}

static Datum
predict_proba(FunctionCallInfo fcinfo, int64 id, Fallback *fb)
{
	pgmln_model *m = id ? get_model(id) : NULL;
	ArrayType  *p = m ? serve_vector(m, PG_GETARG_DATUM(1)) : NULL;

	if (p == NULL)
		return call_fallback(fb, fcinfo, id);
	PG_RETURN_ARRAYTYPE_P(p);
}

Datum
pgml_native_predict_project(PG_FUNCTION_ARGS)
{
	return predict_scalar(fcinfo, deployed_model(PG_GETARG_TEXT_PP(0), true), &fb_predict_text);
}

Datum
pgml_native_predict_model(PG_FUNCTION_ARGS)
{
	return predict_scalar(fcinfo, PG_GETARG_INT64(0), &fb_predict_id);
}

Datum
pgml_native_predict_proba_project(PG_FUNCTION_ARGS)
{
	return predict_proba(fcinfo, deployed_model(PG_GETARG_TEXT_PP(0), true), &fb_proba_text);
}

Datum
pgml_native_predict_proba_model(PG_FUNCTION_ARGS)
{
	return predict_proba(fcinfo, PG_GETARG_INT64(0), &fb_proba_id);
}

Datum
pgml_native_predict_batch_model(PG_FUNCTION_ARGS)
{
	int64		id = PG_GETARG_INT64(0);
	pgmln_model *m = get_model(id);
	float	   *x;
	int			n,
				nf,
				rows,
				feature;
	double	   *out;

	/* as serve_scalar: what the C scorer does not answer, the Python path does */
	if (m == NULL || !pgmln_has_scalar(m))
		return call_fallback(&fb_batch_id, fcinfo, id);
	n = read_features(PG_GETARG_DATUM(1), NULL, 0, &x);
	nf = pgmln_num_features(m);
	if (n < 0 || n % nf != 0)
		return call_fallback(&fb_batch_id, fcinfo, id);
	rows = n / nf;
	out = (double *) palloc(sizeof(double) * (rows > 0 ? rows : 1));
	for (int i = 0; i < rows; i++)
	{
		if ((i & 0xFFFF) == 0)
			CHECK_FOR_INTERRUPTS();
		if (pgmln_predict_checked(m, x + (Size) i * nf, &out[i], &feature) != PGMLN_SCORED)
			return call_fallback(&fb_batch_id, fcinfo, id);
	}
	PG_RETURN_ARRAYTYPE_P(float4_array(out, rows));
}

/* ------------------------------------------------------------------ row form */

/*
 * The Python path receives the record as to_json(record) and turns each value
 * into a float (number / bool columns) or a string (text columns) after
 * json.loads.  The conversions below give the same float or string for every
 * attribute type they accept; any other type makes the whole (model, row
 * type) mapping use the Python path, which then answers (or raises) exactly
 * as before:
 *   - int2/int4/int8, float8, bool: the value (float8out with
 *     extra_float_digits > 0 prints the shortest round-trip decimal, which
 *     Python parses back to the same double);
 *   - float4: float4out's shortest decimal read as a double, as Python's
 *     float() does (not the float's exact value), except where the model
 *     only sees the value as float32 (pgmln_row_float32_ok): then its exact
 *     value, which rounds to the same float32, saves the decimal conversion;
 *   - numeric: numeric_float8 (decimal text through strtod, as float() does);
 *   - text columns: the text of text/varchar/bpchar/name values; str() of
 *     integers and booleans ("True"/"False").
 * A NULL in a column without impute rule, or an array of the wrong length,
 * is handed to the Python path row by row so that its error is the same.
 */

typedef enum
{
	CONV_INT2,
	CONV_INT4,
	CONV_INT8,
	CONV_FLOAT4,				/* as to_json prints it, read back */
	CONV_FLOAT4_EXACT,			/* the float's own value (see pgmln_row_float32_ok) */
	CONV_FLOAT8,
	CONV_NUMERIC,
	CONV_BOOL,
	CONV_TEXT,					/* varlena string types */
	CONV_NAME,
	CONV_INT_TEXT,				/* integer into a text column: str(int) */
	CONV_BOOL_TEXT,				/* boolean into a text column: str(bool) */
	CONV_ARRAY,					/* number array column */
	CONV_TEXT_ARRAY				/* text[] / varchar[] column (multi_hot) */
} ConvKind;

typedef struct
{
	int			att;			/* index into the deformed values */
	Oid			base_type;		/* the attribute's type, domains resolved */
	ConvKind	conv;
	ConvKind	elem_conv;		/* arrays: element conversion */
	Oid			elem_type;
	int16		elem_len;
	bool		elem_byval;
	char		elem_align;
} ColSource;

typedef struct
{
	int64		model_id;		/* the key: model and row type */
	Oid			typid;
	int32		typmod;
	bool		python;			/* this row type is served by the Python path */
	bool		has_float;		/* float4/float8 inputs: needs extra_float_digits > 0 */
	int			ncols;
	ColSource  *cols;
	TupleDesc	tupdesc;		/* private copy, for deforming */
	Datum	   *values;
	bool	   *nulls;
	double	   *x;				/* the model's features */
	double	   *arrbuf;			/* array elements */
	int			arrcap;
	const char **itembuf;		/* text array elements (multi_hot) */
	size_t	   *itemlens;
	int			itemcap;
	MemoryContext mcxt;			/* where the map lives (the query's fn_mcxt) */
} RowMap;

#define ROW_MAPS 4

typedef struct
{
	RowMap	   *maps[ROW_MAPS];
	int			next;
	bool		arg_checked;	/* the call site passes a record type */
} RowMapCache;

/* the per-call-site cache (fn_extra: lives as long as the query's expression state) */
static RowMapCache *
row_cache(FunctionCallInfo fcinfo)
{
	if (fcinfo->flinfo->fn_extra == NULL)
		fcinfo->flinfo->fn_extra = MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt,
														  sizeof(RowMapCache));
	return (RowMapCache *) fcinfo->flinfo->fn_extra;
}

static bool
number_conv(Oid type, ConvKind *conv)
{
	switch (type)
	{
		case INT2OID:
			*conv = CONV_INT2;
			return true;
		case INT4OID:
			*conv = CONV_INT4;
			return true;
		case INT8OID:
			*conv = CONV_INT8;
			return true;
		case FLOAT4OID:
			*conv = CONV_FLOAT4;
			return true;
		case FLOAT8OID:
			*conv = CONV_FLOAT8;
			return true;
		case NUMERICOID:
			*conv = CONV_NUMERIC;
			return true;
		case BOOLOID:
			*conv = CONV_BOOL;
			return true;
		default:
			return false;
	}
}

static bool
text_conv(Oid type, ConvKind *conv)
{
	switch (type)
	{
		case TEXTOID:
		case VARCHAROID:
		case BPCHAROID:
			*conv = CONV_TEXT;
			return true;
		case NAMEOID:
			*conv = CONV_NAME;
			return true;
		case INT2OID:
		case INT4OID:
		case INT8OID:
			*conv = CONV_INT_TEXT;
			return true;
		case BOOLOID:
			*conv = CONV_BOOL_TEXT;
			return true;
		default:
			return false;
	}
}

/*
 * How each model input column is read from records of this type.  As the
 * Python path (RowTransformer._positional): by name when every input column
 * is an attribute name, else by position when the counts match; anything else
 * is left to Python (which raises its "expected N feature columns" error).
 */
static RowMap *
build_row_map(MemoryContext mcxt, const pgmln_model *m, int64 model_id, Oid typid,
			  int32 typmod)
{
	RowMap	   *map = MemoryContextAllocZero(mcxt, sizeof(RowMap));
	TupleDesc	td = lookup_rowtype_tupdesc(typid, typmod);
	int			ncols = pgmln_row_columns(m);
	int			live = 0;
	bool		by_name = true;

	map->mcxt = mcxt;
	map->model_id = model_id;
	map->typid = typid;
	map->typmod = typmod;
	map->ncols = ncols;
	map->cols = MemoryContextAllocZero(mcxt, sizeof(ColSource) * ncols);
	/* zeros: pgmln_row_encode_used writes a text column's used and touched features only */
	map->x = MemoryContextAllocZero(mcxt, sizeof(double) * pgmln_num_features(m));
	for (int a = 0; a < td->natts; a++)
	{
		Form_pg_attribute att = TupleDescAttr(td, a);

		if (att->attisdropped)
			continue;
		live++;
		/* json.loads keeps the last of repeated keys; leave such records to Python */
		for (int b = 0; b < a; b++)
			if (!TupleDescAttr(td, b)->attisdropped &&
				strcmp(NameStr(TupleDescAttr(td, b)->attname), NameStr(att->attname)) == 0)
				map->python = true;
	}
	for (int c = 0; c < ncols && by_name; c++)
	{
		map->cols[c].att = -1;
		for (int a = 0; a < td->natts; a++)
			if (!TupleDescAttr(td, a)->attisdropped &&
				strcmp(NameStr(TupleDescAttr(td, a)->attname), pgmln_row_name(m, c)) == 0)
				map->cols[c].att = a;
		by_name = map->cols[c].att >= 0;
	}
	if (!by_name)
	{
		if (live != ncols)
			map->python = true;
		else
			for (int a = 0, c = 0; a < td->natts; a++)
				if (!TupleDescAttr(td, a)->attisdropped)
					map->cols[c++].att = a;
	}
	for (int c = 0; c < ncols && !map->python; c++)
	{
		ColSource  *src = &map->cols[c];
		Oid			type = getBaseType(TupleDescAttr(td, src->att)->atttypid);
		int			kind = pgmln_row_kind(m, c);
		bool		ok;

		src->base_type = type;
		if (kind == PGMLN_COL_TEXT && pgmln_row_is_array(m, c))
		{
			/* multi_hot: the elements of a text[] (varchar[]) as strings, like to_json */
			Oid			elem = get_element_type(type);

			ok = OidIsValid(elem) && GetDatabaseEncoding() == PG_UTF8 &&
				(getBaseType(elem) == TEXTOID || getBaseType(elem) == VARCHAROID);
			if (ok)
			{
				src->conv = CONV_TEXT_ARRAY;
				src->elem_type = elem;
				get_typlenbyvalalign(elem, &src->elem_len, &src->elem_byval,
									 &src->elem_align);
			}
		}
		else if (kind == PGMLN_COL_TEXT)
			ok = text_conv(type, &src->conv) &&
				(src->conv != CONV_TEXT || GetDatabaseEncoding() == PG_UTF8);
		else if (!pgmln_row_is_array(m, c))
			ok = number_conv(type, &src->conv);
		else
		{
			Oid			elem = get_element_type(type);

			ok = OidIsValid(elem) && number_conv(getBaseType(elem), &src->elem_conv);
			if (ok)
			{
				src->conv = CONV_ARRAY;
				src->elem_type = elem;
				get_typlenbyvalalign(elem, &src->elem_len, &src->elem_byval,
									 &src->elem_align);
			}
		}
		if (ok && pgmln_row_float32_ok(m, c))
		{
			if (src->conv == CONV_FLOAT4)
				src->conv = CONV_FLOAT4_EXACT;
			if (src->conv == CONV_ARRAY && src->elem_conv == CONV_FLOAT4)
				src->elem_conv = CONV_FLOAT4_EXACT;
		}
		if (!ok)
			map->python = true;
		else if (src->conv == CONV_FLOAT4 || src->conv == CONV_FLOAT4_EXACT ||
				 src->conv == CONV_FLOAT8 ||
				 (src->conv == CONV_ARRAY &&
				  (src->elem_conv == CONV_FLOAT4 || src->elem_conv == CONV_FLOAT4_EXACT ||
				   src->elem_conv == CONV_FLOAT8)))
			map->has_float = true;
	}
	if (!map->python)
	{
		MemoryContext old = MemoryContextSwitchTo(mcxt);

		map->tupdesc = CreateTupleDescCopy(td);
		map->values = palloc(sizeof(Datum) * Max(td->natts, 1));
		map->nulls = palloc(sizeof(bool) * Max(td->natts, 1));
		MemoryContextSwitchTo(old);
	}
	ReleaseTupleDesc(td);
	return map;
}

static RowMap *
row_map(FunctionCallInfo fcinfo, const pgmln_model *m, int64 model_id, Oid typid, int32 typmod)
{
	RowMapCache *cache = row_cache(fcinfo);
	RowMap	   *map;

	for (int i = 0; i < ROW_MAPS; i++)
	{
		map = cache->maps[i];
		if (map != NULL && map->model_id == model_id && map->typid == typid &&
			map->typmod == typmod)
			return map;
	}
	/* a model id's blob never changes, so the mapping never goes stale */
	map = build_row_map(fcinfo->flinfo->fn_mcxt, m, model_id, typid, typmod);
	if (cache->maps[cache->next] != NULL)
	{
		RowMap	   *old = cache->maps[cache->next];

		if (old->tupdesc)
			FreeTupleDesc(old->tupdesc);
		pfree(old);				/* the rest is small; fn_mcxt goes with the query */
	}
	cache->maps[cache->next] = map;
	cache->next = (cache->next + 1) % ROW_MAPS;
	return map;
}

/*
 * float4 as the Python path sees it: float4out's shortest decimal (what
 * to_json prints), read back as a double.  The digits and the decimal exponent
 * give the double exactly with one correctly rounded multiplication or
 * division when both are small (Clinger's fast path); strtod otherwise.
 */
static double
float4_as_json(float4 f)
{
	static const double pow10[] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10,
		1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
	char		buf[32];
	const char *p = buf;
	uint64		mant = 0;
	int			digits = 0,
				frac = 0,
				exp10;
	bool		neg = false,
				in_frac = false;

	if (isnan(f) || isinf(f))
		return (double) f;
	float_to_shortest_decimal_buf(f, buf);
	if (*p == '-')
	{
		neg = true;
		p++;
	}
	for (; *p && *p != 'e'; p++)
	{
		if (*p >= '0' && *p <= '9')
		{
			mant = mant * 10 + (uint64) (*p - '0');
			digits++;
			frac += in_frac;
		}
		else if (*p == '.')
			in_frac = true;
		else
			return strtod(buf, NULL);
	}
	exp10 = (*p == 'e' ? atoi(p + 1) : 0) - frac;
	if (digits > 15 || exp10 > 22 || exp10 < -22)
		return strtod(buf, NULL);
	{
		double		d = (double) mant;

		d = exp10 >= 0 ? d * pow10[exp10] : d / pow10[-exp10];
		return neg ? -d : d;
	}
}

static double
number_value(ConvKind conv, Datum d)
{
	switch (conv)
	{
		case CONV_INT2:
			return (double) DatumGetInt16(d);
		case CONV_INT4:
			return (double) DatumGetInt32(d);
		case CONV_INT8:
			return (double) DatumGetInt64(d);
		case CONV_FLOAT4:
			return float4_as_json(DatumGetFloat4(d));
		case CONV_FLOAT4_EXACT:
			return (double) DatumGetFloat4(d);
		case CONV_FLOAT8:
			return DatumGetFloat8(d);
		case CONV_NUMERIC:
			return DatumGetFloat8(DirectFunctionCall1(numeric_float8, d));
		case CONV_BOOL:
			return DatumGetBool(d) ? 1.0 : 0.0;
		default:
			elog(ERROR, "pgml_native: not a number conversion: %d", (int) conv);
	}
	return 0.0;					/* keep the compiler quiet */
}

/* the elements of an array attribute as doubles (NaN = NULL), into map->arrbuf */
static void
array_value(RowMap *map, const ColSource *src, Datum d, pgmln_value *v)
{
	ArrayType  *arr = DatumGetArrayTypeP(d);
	Datum	   *elems;
	bool	   *enulls;
	int			n;

	deconstruct_array(arr, src->elem_type, src->elem_len, src->elem_byval, src->elem_align,
					  &elems, &enulls, &n);
	if (n > map->arrcap)
	{
		map->arrbuf = MemoryContextAlloc(map->mcxt, sizeof(double) * n);
		map->arrcap = n;
	}
	for (int i = 0; i < n; i++)
		map->arrbuf[i] = enulls[i] ? NAN : number_value(src->elem_conv, elems[i]);
	v->arr = map->arrbuf;
	v->n = (size_t) n;
}

/* the elements of a text[] attribute as strings (NULL pointer = NULL element) */
static void
text_array_value(RowMap *map, const ColSource *src, Datum d, pgmln_value *v)
{
	ArrayType  *arr = DatumGetArrayTypeP(d);
	Datum	   *elems;
	bool	   *enulls;
	int			n;

	deconstruct_array(arr, src->elem_type, src->elem_len, src->elem_byval, src->elem_align,
					  &elems, &enulls, &n);
	if (n > map->itemcap)
	{
		map->itembuf = MemoryContextAlloc(map->mcxt, sizeof(char *) * n);
		map->itemlens = MemoryContextAlloc(map->mcxt, sizeof(size_t) * n);
		map->itemcap = n;
	}
	for (int i = 0; i < n; i++)
	{
		text	   *t = enulls[i] ? NULL : DatumGetTextPP(elems[i]);

		map->itembuf[i] = t ? VARDATA_ANY(t) : NULL;
		map->itemlens[i] = t ? VARSIZE_ANY_EXHDR(t) : 0;
	}
	v->items = map->itembuf;
	v->item_lens = map->itemlens;
	v->nitems = (size_t) n;
}

/*
 * The features of one record into map->x; false when the Python path must
 * answer this row (it raises the error the user should see).
 */
static bool
encode_record(const pgmln_model *m, RowMap *map, HeapTupleHeader rec)
{
	HeapTupleData tuple;
	char		buf[32];

	tuple.t_len = HeapTupleHeaderGetDatumLength(rec);
	ItemPointerSetInvalid(&tuple.t_self);
	tuple.t_tableOid = InvalidOid;
	tuple.t_data = rec;
	heap_deform_tuple(&tuple, map->tupdesc, map->values, map->nulls);
	for (int c = 0; c < map->ncols; c++)
	{
		const ColSource *src = &map->cols[c];
		Datum		d = map->values[src->att];
		pgmln_value v;

		memset(&v, 0, sizeof v);
		v.isnull = map->nulls[src->att];
		if (!v.isnull)
			switch (src->conv)
			{
				case CONV_TEXT:
					{
						text	   *t = DatumGetTextPP(d);

						v.str = VARDATA_ANY(t);
						v.len = VARSIZE_ANY_EXHDR(t);
						break;
					}
				case CONV_NAME:
					v.str = NameStr(*DatumGetName(d));
					v.len = strlen(v.str);
					break;
				case CONV_INT_TEXT:
					{
						int64		i = src->base_type == INT2OID ? DatumGetInt16(d)
							: src->base_type == INT4OID ? DatumGetInt32(d) : DatumGetInt64(d);

						v.len = (size_t) pg_lltoa(i, buf);
						v.str = buf;
						break;
					}
				case CONV_BOOL_TEXT:
					v.str = DatumGetBool(d) ? "True" : "False";
					v.len = strlen(v.str);
					break;
				case CONV_ARRAY:
					array_value(map, src, d, &v);
					break;
				case CONV_TEXT_ARRAY:
					text_array_value(map, src, d, &v);
					break;
				default:
					v.num = number_value(src->conv, d);
			}
		if (pgmln_row_encode_used(m, c, &v, map->x) != PGMLN_ROW_OK)
			return false;
	}
	return true;
}

static Datum
predict_row(FunctionCallInfo fcinfo, int64 id, Fallback *fb)
{
	pgmln_model *m = id ? get_model(id) : NULL;
	RowMapCache *cache = row_cache(fcinfo);
	HeapTupleHeader rec;
	RowMap	   *map;
	double		v;
	int			feature;

	if (!cache->arg_checked)
	{
		Oid			argtype = get_fn_expr_argtype(fcinfo->flinfo, 1);

		if (!OidIsValid(argtype) || !type_is_rowtype(argtype))
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("the row form of pgml.predict takes a record, got %s",
							OidIsValid(argtype) ? format_type_be(argtype) : "an unknown type"),
					 errhint("Pass a table row (pgml.predict('project', t) FROM t) or "
							 "ROW(...), or an array of the features (ARRAY[...]::real[]).")));
		cache->arg_checked = true;
	}
	rec = PG_GETARG_HEAPTUPLEHEADER(1);
	if (m == NULL || !pgmln_has_row(m) || !pgmln_has_scalar(m))
		return call_fallback_with(fb, fcinfo, id,
								  DirectFunctionCall1(row_to_json, PointerGetDatum(rec)));
	map = row_map(fcinfo, m, id, HeapTupleHeaderGetTypeId(rec), HeapTupleHeaderGetTypMod(rec));
	if (map->python || (map->has_float && extra_float_digits <= 0) ||
		!encode_record(m, map, rec) ||
		pgmln_predict_used_f64(m, map->x, &v, &feature) != PGMLN_SCORED)
		return call_fallback_with(fb, fcinfo, id,
								  DirectFunctionCall1(row_to_json, PointerGetDatum(rec)));
	PG_RETURN_FLOAT4((float4) v);
}

Datum
pgml_native_predict_row_project(PG_FUNCTION_ARGS)
{
	return predict_row(fcinfo, deployed_model(PG_GETARG_TEXT_PP(0), true), &fb_row_text);
}

Datum
pgml_native_predict_row_model(PG_FUNCTION_ARGS)
{
	return predict_row(fcinfo, PG_GETARG_INT64(0), &fb_row_id);
}

Datum
pgml_native_deployed_model_id(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT64(deployed_model(PG_GETARG_TEXT_PP(0), false));
}

/* ------------------------------------------------------------------ cache admin */

Datum
pgml_native_cache_stats(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	dlist_iter	it;

	InitMaterializedSRF(fcinfo, 0);
	if (model_hash == NULL)
		return (Datum) 0;
	dlist_foreach(it, &lru_list)
	{
		ModelEntry *e = dlist_container(ModelEntry, lru, it.cur);
		Datum		values[4];
		bool		nulls[4] = {false, false, false, false};

		values[0] = Int64GetDatum(e->model_id);
		values[1] = Int64GetDatum((int64) e->bytes);
		values[2] = Int64GetDatum(e->hits);
		values[3] = TimestampTzGetDatum(e->last_used);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

Datum
pgml_native_cache_reset(PG_FUNCTION_ARGS)
{
	(void) fcinfo;
	last_entry = NULL;
	last_project = -1;
	next_project_slot = 0;
	memset(projects, 0, sizeof projects);
	model_hash = NULL;
	dlist_init(&lru_list);
	cache_bytes = 0;
	if (CacheContext != NULL)
		MemoryContextReset(CacheContext); /* models, names and the hash table */
	PG_RETURN_VOID();
}

void
_PG_init(void)
{
	DefineCustomIntVariable("pgml.native_cache_mb",
							"Memory for parsed native models per backend.",
							"Least recently used models are evicted beyond this size; a single "
							"larger model is still loaded.",
							&native_cache_mb,
							256, 0, INT_MAX / 2,
							PGC_USERSET,
							GUC_UNIT_MB,
							NULL, NULL, NULL);
	pgml_define_settings();
}

/* ------------------------------------------------------------------ words */

/*
 * pgml_flow.word_count(text) (sql/idempotent/095_word_count.sql): the number of fields
 * of regexp_split_to_array(btrim(t), '\s+'), 0 for NULL or a blank text: the built-in
 * complexity feature description_words, computed for every row the BI views read.
 * PostgreSQL's regex engine costs ~70 us on a 400-character description; this counts
 * the same fields in one pass: 1 + the runs of white space (a run at either end makes an
 * empty field, as the split does).  \s is the same in every collation provider for
 * the ASCII characters other than U+001C..U+001F (tab, newline, vertical tab, form
 * feed, carriage return, space: none of the others), and, in a UTF-8 database, no
 * provider's \s matches a code point outside Unicode's white space (maybe_space_cp);
 * a text with any of U+001C..U+001F or of those code points takes the regex itself,
 * with the caller's collation.  About 1.5 % of real issue descriptions are not ASCII
 * (accents, quotes, CJK): they took the regex before, 70 us each, a microsecond per
 * row of a BI read on average.
 */

/* per byte: 0 a word byte, 1 ASCII white space, 2 look closer (U+001C..U+001F, a UTF-8
 * lead or continuation byte) */
static const unsigned char wc_class[256] = {
	['\t'] = 1, ['\n'] = 1, ['\v'] = 1, ['\f'] = 1, ['\r'] = 1, [' '] = 1,
	[0x1C] = 2, [0x1D] = 2, [0x1E] = 2, [0x1F] = 2,
	[0x80 ... 0xFF] = 2,
};

/*
 * Could some collation provider's \s match this code point (U+0080 and above)?  Unicode's
 * White_Space and the Zs, Zl and Zp categories (ICU's u_isspace; glibc's iswspace is a
 * subset), with U+180E and U+200B, which older Unicode versions put in Zs, and U+FEFF:
 * U+0085 and U+00A0 (with the C1 controls), U+1680, U+180E, U+2000..U+200B, U+2028,
 * U+2029, U+202F, U+205F, U+3000, U+FEFF.  Every other code point is a word character
 * to every provider.
 */
static inline bool
maybe_space_cp(pg_wchar cp)
{
	return cp <= 0xA0 || cp == 0x1680 || cp == 0x180E || (cp >= 0x2000 && cp <= 0x200B) ||
		cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000 ||
		cp == 0xFEFF;
}

/* the length of the UTF-8 character at p[0..n) that is not white space to any provider;
 * 0 when it may be (or is not a valid character: the regex decides) */
static inline size_t
utf8_word_char(const unsigned char *p, size_t n)
{
	unsigned char c = p[0];
	size_t		len;
	pg_wchar	cp;

	if (c >= 0xC2 && c <= 0xDF)
		len = 2, cp = c & 0x1F;
	else if (c >= 0xE0 && c <= 0xEF)
		len = 3, cp = c & 0x0F;
	else if (c >= 0xF0 && c <= 0xF4)
		len = 4, cp = c & 0x07;
	else
		return 0;
	if (len > n)
		return 0;
	for (size_t k = 1; k < len; k++)
	{
		if ((p[k] & 0xC0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[k] & 0x3F);
	}
	return maybe_space_cp(cp) ? 0 : len;
}

Datum
pgml_native_word_count(PG_FUNCTION_ARGS)
{
	text	   *t;
	const unsigned char *p;
	size_t		n,
				i = 0;
	int32		runs = 0;
	unsigned	in_space = 0;
	bool		utf8 = GetDatabaseEncoding() == PG_UTF8;

	if (PG_ARGISNULL(0))
		PG_RETURN_INT32(0);
	t = PG_GETARG_TEXT_PP(0);
	p = (const unsigned char *) VARDATA_ANY(t);
	n = VARSIZE_ANY_EXHDR(t);
	/* btrim(t): spaces only */
	while (n > 0 && p[n - 1] == ' ')
		n--;
	while (i < n && p[i] == ' ')
		i++;
	if (i == n)
		PG_RETURN_INT32(0);
	while (i < n)
	{
		unsigned	cls = wc_class[p[i]];

		if (likely(cls < 2))
		{
			/* a run starts at a space after a word byte */
			runs += cls & ~in_space;
			in_space = cls;
			i++;
			continue;
		}
		if (utf8 && p[i] >= 0x80)
		{
			size_t		len = utf8_word_char(p + i, n - i);

			if (len > 0)
			{
				in_space = 0;
				i += len;
				continue;
			}
		}
		{
			Datum		trimmed = DirectFunctionCall1Coll(btrim1, PG_GET_COLLATION(),
														  PointerGetDatum(t));
			ArrayType  *fields = DatumGetArrayTypeP(
				DirectFunctionCall2Coll(regexp_split_to_array_no_flags, PG_GET_COLLATION(),
										trimmed, CStringGetTextDatum("\\s+")));

			PG_RETURN_INT32(ARR_NDIM(fields) > 0 ? ARR_DIMS(fields)[0] : 0);
		}
	}
	PG_RETURN_INT32(runs + 1);
}

/* ------------------------------------------------------------------ six digits */

/*
 * pgml_flow.real_digits(real) (sql/idempotent/096_real_digits.sql): real::numeric::double
 * precision, the double of the real's six significant digits (8.7, not
 * 8.699999809265137), which the BI surface returns for every prediction.  The cast
 * through numeric prints the real, parses the digits into a numeric, prints that and
 * parses it as a double: half a microsecond per value, a tenth of a BI read's time per
 * row.  This prints and parses once, as those do: float4_numeric's "%.*g" with FLT_DIG
 * digits, float8in's strtod (both give the double nearest to the same decimal).  NaN and
 * the infinities stay themselves, as in numeric; numeric has no negative zero.
 */
Datum
pgml_native_real_digits(PG_FUNCTION_ARGS)
{
	float4		val = PG_GETARG_FLOAT4(0);
	char		buf[64];
	double		d;

	if (isnan(val) || isinf(val))
		PG_RETURN_FLOAT8((float8) val);
	snprintf(buf, sizeof(buf), "%.*g", FLT_DIG, val);
	d = strtod(buf, NULL);
	PG_RETURN_FLOAT8(d == 0.0 ? 0.0 : d);
}
