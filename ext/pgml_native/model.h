/*
 * model.h -- PostgreSQL-independent core of pgml_native.
 *
 * Parses the compact model blob written by pgml_flow/engine/native.py (the
 * format is documented there, and mirrored in model.c) and evaluates it.
 * Nothing here knows about PostgreSQL, so the same code is built into the
 * extension and into a plain shared library that the parity tests load with
 * ctypes: what the tests check is exactly what the server runs.
 *
 * Error handling: parsing validates everything it reads and reports problems
 * through a return code and a message buffer; once a model parsed, evaluation
 * cannot fail (tree walks are bounded by construction), which is why the
 * evaluation functions return no status.
 */
#ifndef PGML_NATIVE_MODEL_H
#define PGML_NATIVE_MODEL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PGMLN_MAGIC "PGMLNATV"
/* newest blob version this build reads; version 1 blobs (no row section) still load */
#define PGMLN_VERSION 2

/* model kinds */
#define PGMLN_KIND_TREES 1
#define PGMLN_KIND_LINEAR 2
/* oblivious trees (CatBoost): one split per depth level, the leaf index is the
 * bit pattern of the level decisions (bit d set when level d's x > threshold) */
#define PGMLN_KIND_OBLIVIOUS 3

/* tasks */
#define PGMLN_TASK_REGRESSION 0
#define PGMLN_TASK_CLASSIFICATION 1

/* links: how raw scores become outputs */
#define PGMLN_LINK_IDENTITY 0 /* outputs = raw (RF class fractions too) */
#define PGMLN_LINK_SIGMOID 1  /* 1/(1+exp(-p*raw)), elementwise; binary -> [1-p, p] */
#define PGMLN_LINK_SOFTMAX 2  /* softmax over the raw scores */
#define PGMLN_LINK_EXP 3      /* exp(raw): poisson/gamma/tweedie */
#define PGMLN_LINK_OVR 4      /* sigmoid each, then normalise to sum 1 (sklearn OvR) */
#define PGMLN_LINK_NONE 5     /* decision function only: class yes, probabilities no */

/* row section: column kinds and text encodings (see native.py) */
#define PGMLN_COL_NUMBER 0
#define PGMLN_COL_BOOL 1
#define PGMLN_COL_TEXT 2
#define PGMLN_ENC_NONE 0		/* number / bool: the value itself */
#define PGMLN_ENC_NATIVE 1		/* index in the sorted train categories */
#define PGMLN_ENC_ORDINAL 2		/* index in the user's list */
#define PGMLN_ENC_ONE_HOT 3		/* one indicator per category */
#define PGMLN_ENC_TARGET 4		/* mean train label of the category */
#define PGMLN_ENC_MULTI_HOT 5	/* text[]: one indicator per vocabulary value (text.c) */
#define PGMLN_ENC_WORDS 6		/* one indicator per vocabulary token */
#define PGMLN_ENC_TFIDF 7		/* l2-normalised tf-idf of the vocabulary n-grams */
#define PGMLN_ENC_HASHING 8		/* l2-normalised hashed n-gram counts */

/* pgmln_row_encode results */
#define PGMLN_ROW_OK 0
#define PGMLN_ROW_REJECT 1		/* the Python path must answer (it raises the error) */

/* error codes */
#define PGMLN_OK 0
#define PGMLN_ERR_FORMAT 1 /* corrupt, truncated or not a model blob */
#define PGMLN_ERR_VERSION 2
#define PGMLN_ERR_NOMEM 3

typedef struct pgmln_model pgmln_model;

/* allocator used for the single block holding a parsed model; NULL = malloc */
typedef void *(*pgmln_alloc_fn)(void *ctx, size_t size);

/*
 * Parse and validate a blob.  On success *out points to one allocation (from
 * alloc, or malloc) holding the whole model; release it with the matching
 * free (pgmln_free for malloc).  On failure returns an error code and writes a
 * NUL-terminated message to err (if errlen > 0).
 */
int pgmln_parse(const void *blob, size_t len, pgmln_alloc_fn alloc, void *alloc_ctx,
				pgmln_model **out, char *err, size_t errlen);
void pgmln_free(pgmln_model *m);

/* 64-bit checksum stored in the blob trailer; also used as a content key */
uint64_t pgmln_hash(const void *data, size_t len);
/* the checksum a blob claims (its last 8 bytes); 0 if too short */
uint64_t pgmln_blob_checksum(const void *blob, size_t len);

/* properties */
size_t pgmln_model_bytes(const pgmln_model *m);
int pgmln_kind(const pgmln_model *m);
int pgmln_task(const pgmln_model *m);
int pgmln_num_features(const pgmln_model *m);
int pgmln_num_classes(const pgmln_model *m);
/* 1 if pgmln_predict_row gives a meaningful scalar (not multi-output regression) */
int pgmln_has_scalar(const pgmln_model *m);
/* width of the vector pgmln_outputs_row writes: class probabilities for
 * classifiers (0 when the model has no probabilities), outputs for regression */
int pgmln_vector_width(const pgmln_model *m);

/* scalar prediction for one row of num_features floats: the value for
 * regression, the class label (or index) for classification */
double pgmln_predict_row(const pgmln_model *m, const float *x);
/* scalar predictions for n rows stored row-major */
void pgmln_predict_rows(const pgmln_model *m, const float *x, size_t n, double *out);
/* vector output (see pgmln_vector_width) for one row into out */
void pgmln_outputs_row(const pgmln_model *m, const float *x, double *out);
/* vector outputs for n rows, out has n * width entries */
void pgmln_outputs_rows(const pgmln_model *m, const float *x, size_t n, double *out);

/* the same, for one row of num_features doubles (the row form's features):
 * trees read them as float32 like the libraries, linear models in double */
double pgmln_predict_row_f64(const pgmln_model *m, const double *x);
void pgmln_outputs_row_f64(const pgmln_model *m, const double *x, double *out);

/*
 * Input rules (blob flags bits 4-6, pgml_flow/engine/inputs.py): which NaN and
 * infinite feature values the model's library scores.  The *_checked
 * functions score a row like the functions above and return PGMLN_SCORED, or
 * leave `out` alone and say why the C scorer does not answer it; the caller
 * then lets the Python path answer, which raises the error the user sees.
 * *feature gets the (0-based) feature at fault.  The cost is nothing for
 * models that score every value (XGBoost, LightGBM, HistGradientBoosting),
 * one isfinite test of the raw scores for linear models, and one scan of the
 * row for the other trees.  For trees a double feature beyond float32's
 * range (the row form) counts as an infinity: they read float32, as the
 * scikit-learn trees do.
 */
#define PGMLN_SCORED 0
#define PGMLN_REFUSED_NAN 1		/* a NaN (a NULL element) the model refuses */
#define PGMLN_REFUSED_INF 2		/* an infinity the model refuses */
#define PGMLN_UNDECIDED 3		/* a NaN or infinity, and a blob without input rules */

int pgmln_has_input_rules(const pgmln_model *m);
int pgmln_predict_checked(const pgmln_model *m, const float *x, double *out, int *feature);
int pgmln_outputs_checked(const pgmln_model *m, const float *x, double *out, int *feature);
int pgmln_predict_checked_f64(const pgmln_model *m, const double *x, double *out,
							  int *feature);

/*
 * Row form (blob version 2 with a row section): the input columns the model
 * was trained on, in order, and the snapshot's fitted preprocessing of each.
 * The caller reads column `col` of a record (by name) and passes its value;
 * pgmln_row_encode writes the column's pgmln_row_width model inputs at
 * x[pgmln_row_offset].  It returns PGMLN_ROW_REJECT where the Python path
 * raises an error (a NULL in a column whose impute rule is "error", an array
 * of the wrong length), so that the caller can let Python produce it.
 */
typedef struct
{
	int			isnull;			/* SQL NULL (the whole array, for array columns) */
	double		num;			/* number / bool: the value, NaN = missing */
	const char *str;			/* text (UTF-8, not NUL-terminated) */
	size_t		len;
	const double *arr;			/* array columns: the elements flattened, NaN = NULL */
	size_t		n;
	/* text[] columns (multi_hot): the elements, a NULL pointer for a NULL element */
	const char *const *items;
	const size_t *item_lens;
	size_t		nitems;
} pgmln_value;

int pgmln_has_row(const pgmln_model *m);
int pgmln_row_columns(const pgmln_model *m);
/* name of column col (UTF-8, NUL-terminated), its kind, array flag and width */
const char *pgmln_row_name(const pgmln_model *m, int col);
int pgmln_row_kind(const pgmln_model *m, int col);
int pgmln_row_is_array(const pgmln_model *m, int col);
int pgmln_row_width(const pgmln_model *m, int col);
int pgmln_row_encode(const pgmln_model *m, int col, const pgmln_value *v, double *x);
/*
 * The same for a caller that passes x only to the scorer: a text column writes the
 * features the model reads and those its value touches instead of its whole width
 * (the others keep their previous, finite, values; x must start zeroed), with the
 * same values to the bit; for a linear model without a prefix, it lists the text's
 * non-zero features for pgmln_predict_used_f64 and writes nothing in x.  pgml_native.c's
 * serving path.
 */
int pgmln_row_encode_used(const pgmln_model *m, int col, const pgmln_value *v, double *x);
/*
 * pgmln_predict_checked_f64 of a row every column of which pgmln_row_encode_used just
 * encoded into x (the serving path).  A linear model without a prefix gets its text
 * columns from those calls as lists of their non-zero features (x keeps zeros there),
 * so that it costs the non-zero features times the classes, not the width; the sums
 * are the ones of the whole row, to the bit.  Other models score x as it is.
 */
int pgmln_predict_used_f64(const pgmln_model *m, const double *x, double *out, int *feature);
/*
 * 1 if this number column's values only matter as float32: a tree model read
 * in float32 (not LightGBM, which reads doubles) with no prefix, and the
 * column is not centered or scaled.  The caller may then pass a float4
 * attribute as its exact value instead of the decimal the Python path parses:
 * both round to the same float32.
 */
int pgmln_row_float32_ok(const pgmln_model *m, int col);

#ifdef __cplusplus
}
#endif
#endif
