/*
 * text.h -- the text encodings of the row form (multi_hot, words, tfidf,
 * hashing), PostgreSQL-independent like model.c.
 *
 * The tokenizer is defined in pgml_flow/engine/text.py and reproduced here
 * byte for byte: word characters, the lower-casing table, tokens of 2+ code
 * points, n-grams joined by one space, MurmurHash3 x86_32 (seed 0) for
 * hashing, tf-idf weighting and the l2 norm summed in column order.
 */
#ifndef PGML_NATIVE_TEXT_H
#define PGML_NATIVE_TEXT_H

#include "model.h"

#define PGMLN_TEXT_SUBLINEAR_TF 0x1u
#define PGMLN_TEXT_ALTERNATE_SIGN 0x2u
#define PGMLN_TEXT_KNOWN_FLAGS (PGMLN_TEXT_SUBLINEAR_TF | PGMLN_TEXT_ALTERNATE_SIGN)
#define PGMLN_TEXT_TOKENIZER 1	/* the tokenizer version this build reproduces */
#define PGMLN_MAX_NGRAM 4

/* a fitted text encoding of one column, pointing into the parsed model */
typedef struct
{
	uint32_t	encode;			/* PGMLN_ENC_MULTI_HOT .. PGMLN_ENC_HASHING */
	uint32_t	lo, hi, flags;	/* n-gram range, PGMLN_TEXT_* */
	uint32_t	width;
	uint32_t	ncat;			/* vocabulary (categories), none for hashing */
	char	  **cat;
	uint32_t   *cat_len;
	uint32_t   *slots;			/* model.c's open-addressing table: index + 1, 0 empty */
	uint32_t	mask;
	double	   *idf;			/* tfidf */
	uint32_t	maxlen;			/* longest vocabulary term, bytes */
	/* pgmln_text_encode_used's vocabulary index (pgmln_text_index): per slot 16 bits of
	 * the term's hash and its index + 1, 0 empty; imask + 1 slots; NULL for a vocabulary
	 * of 65,535 terms or more (vocab_code serves it) */
	uint32_t   *index;
	uint32_t	imask;
} pgmln_text;

/* the slots pgmln_text_index needs for a vocabulary of ncat terms (a power of two; 0
 * for a vocabulary too large to index) */
uint32_t	pgmln_text_index_slots(uint32_t ncat);

/* build t's vocabulary index into tab (pgmln_text_index_slots(t->ncat) slots) */
void		pgmln_text_index(pgmln_text *t, uint32_t *tab);

/* the hash model.c builds the category tables with (FNV-1a) */
uint32_t	pgmln_text_fnv1a(const char *p, size_t len);

/*
 * The encoding's width values for one value into out: indicators (multi_hot,
 * words), l2-normalised tf-idf or hashed counts; zeros for NULL.  scratch
 * holds at least maxlen + 1 bytes.  Cannot fail.
 */
void		pgmln_text_encode(const pgmln_text *t, const pgmln_value *v, double *out,
							  char *scratch);

/* scratch of pgmln_text_encode_used, as wide as the widest encoding (model.c owns it) */
typedef struct
{
	double	   *count;			/* all zeros between calls */
	uint64_t   *bits;			/* bit j: column j touched by this call; zeros between calls */
	uint32_t   *touched;		/* the columns touched by this call */
	char	   *lower;			/* PGMLN_MAX_NGRAM + 1 slots of (longest term + 1) bytes */
} pgmln_text_scratch;

/*
 * pgmln_text_encode's values for the columns zero[0 .. nzero) - base and every column the
 * value touches (bit for bit the same); the other columns of out are left as they were.
 * The serving path's: the trees read a few hundred of thousands of text columns.
 */
void		pgmln_text_encode_used(const pgmln_text *t, const pgmln_value *v, double *out,
								   char *scratch, const pgmln_text_scratch *sp,
								   const uint32_t *zero, uint32_t nzero, uint32_t base);

/*
 * The same values as a sparse list for the linear scorer: the columns the value touches,
 * ascending, base + column in idx and the value in val (room for the width each); returns
 * how many.  The columns not listed are zeros.  Writes nothing else.
 */
uint32_t	pgmln_text_encode_sparse(const pgmln_text *t, const pgmln_value *v, char *scratch,
									 const pgmln_text_scratch *sp, uint32_t base,
									 uint32_t *idx, double *val);

/* signed MurmurHash3 x86_32 of bytes, seed 0 (exported for the tests) */
int32_t		pgmln_murmur3(const void *data, size_t len);

/* the tokens of a UTF-8 text, lower-cased, each followed by '\n', into out
 * (at most cap bytes); returns the bytes needed (exported for the tests) */
size_t		pgmln_tokens(const char *s, size_t len, char *out, size_t cap);

#endif
