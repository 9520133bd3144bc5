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
#define PGMLN_VERSION 1

/* model kinds */
#define PGMLN_KIND_TREES 1
#define PGMLN_KIND_LINEAR 2

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

#ifdef __cplusplus
}
#endif
#endif
