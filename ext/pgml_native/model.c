/*
 * model.c -- parse, validate and evaluate pgml_native model blobs.
 *
 * Blob layout (little-endian; authoritative description in
 * pgml_flow/engine/native.py):
 *
 *   header, 64 bytes
 *     0  char[8] magic "PGMLNATV"      8  u32 version (1)
 *     12 u32 kind (1 trees, 2 linear, 3 oblivious trees)
 *                                       16 u32 task (0 regression, 1 classification)
 *     20 u32 link                       24 u32 num_features F
 *     28 u32 num_outputs K (raw width)  32 u32 num_classes C (0 for regression)
 *     36 u32 flags (bit0 preprocess, bit1 class labels, bit2 read |x| <= 1e-35 as 0,
 *        bit3 row section, bit4 input rules: bit5 refuse NaN, bit6 refuse infinities)
 *     40 f64 link_param                 48 f64 divisor (raw = base + sum / divisor)
 *     56 u64 body_len
 *   body
 *     f64 base[K]; [f64 labels[C]]; [f64 impute[F], shift[F], mult[F]]
 *     trees:  u32 n_trees, u32 leaf_width W, u64 n_nodes,
 *             u32 tree_nodes[n_trees], u32 tree_group[n_trees],
 *             node[n_nodes] = {i32 left, i32 right, u32 feature, u32 flags, f32 threshold},
 *             f64 leaf_values[n_leaves * W]
 *     linear: f64 coef[K * F] (class-major; parsed feature-major, see struct pgmln_model)
 *     oblivious (CatBoost): u32 n_trees, u32 leaf_width W, u64 n_splits,
 *             u32 tree_depth[n_trees], u32 tree_group[n_trees],
 *             split[n_splits] = {u32 feature, u32 flags (bit0 NaN counts as above),
 *             f32 threshold} (tree by tree, level 0 first), f64 leaf_values[sum of
 *             2^depth * W]: level d sets bit d of the leaf index when x > threshold
 *     row section (version 2, flags bit3): u32 n_columns, then per column
 *       u32 kind, u32 encode, u32 flags (bit0 fill, bit1 array), u32 width,
 *       u32 name_len, u8 name[], u32 n_categories, {u32 len, u8 bytes[]}[],
 *       [f64 target_means[n_categories], f64 target_prior], [f64 fill[width]],
 *       f64 center[width], f64 scale[width]
 *     output section (flags bit7): u32 transform (0 none, 1 expm1, 2 class median:
 *       a classifier's scalar is the lower weighted median of its class probabilities
 *       over scale, one value per class, and it is served as regression), u32 n_scale,
 *       f64 scale[n_scale] (snapping, ascending), u32 calibration (0 none, 1 sigmoid,
 *       2 isotonic), u32 n_points, f64 points: sigmoid a, b; isotonic x[n], y[n]
 *   trailer: u32 CRC-32 (zlib polynomial) of every preceding byte
 *
 * Why this shape: everything a reader needs to size its allocation comes
 * before the arrays, so one pass validates and a second fills a single block.
 * Children must have larger tree-local indices than their parent, which makes
 * every walk terminate without a visited set and lets heights be computed in
 * one reverse pass.
 *
 * Evaluation: trees are walked eight at a time (sixteen, two blocks, on the
 * perfect layout's fast path) in lock step for a fixed number of steps (the
 * block's height), with compares and selects instead of
 * branches, so random inputs do not cost a branch mispredict per level and
 * the eight independent load chains overlap in the CPU.  Shallow ensembles
 * (height <= 12, padding at most ~4x) are laid out as padded breadth-first
 * trees where node n's children are 2n+1 and 2n+2: no child index load on the
 * dependency chain, and rows without NaN skip the missing-value logic.  Deep
 * trees (random forests) keep an explicit-children layout whose leaves point
 * to themselves.  Features are float32 (what XGBoost and
 * scikit-learn trees use; LightGBM's double thresholds are rounded down to the
 * largest float32 not above them by the compiler, which gives identical
 * decisions for float32 inputs); scores accumulate in double, in the
 * library's own tree order.
 */
#include "model.h"
#include "text.h"

#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HEADER_SIZE 64
#define TRAILER_SIZE 4
#define FLAG_PREPROCESS 0x1u
#define FLAG_LABELS 0x2u
#define FLAG_SNAP_ZERO 0x4u
#define FLAG_ROW 0x8u
#define FLAG_INPUT_RULES 0x10u
#define FLAG_REFUSE_NAN 0x20u
#define FLAG_REFUSE_INF 0x40u
#define FLAG_OUTPUT 0x80u		/* output section (target options, engine/targets.py) */
#define OUT_EXPM1 1				/* the model learned log1p(y): its output is expm1'd */
#define OUT_CLASS_MEDIAN 2		/* a classifier read as the median of its class values */
#define MAX_MEDIAN_CLASSES 256u	/* engine/targets.py MAX_SCALE: a stack buffer of these */
#define CAL_SIGMOID 1			/* q = sigmoid(a * logit(p) + b) */
#define CAL_ISOTONIC 2			/* q = piecewise-linear table, clamped at its ends */
#define MAX_SCALE 65536u
#define CAL_EPS 1e-12
#define COL_FILL 0x1u
#define COL_ARRAY 0x2u
#define MAX_ROW_COLUMNS 65536u
#define NODE_DEFAULT_LEFT 0x1u
#define NODE_ZERO_MISSING 0x2u
#define NODE_KNOWN_FLAGS (NODE_DEFAULT_LEFT | NODE_ZERO_MISSING)
#define BLOB_NODE_SIZE 20
#define BLOB_SPLIT_SIZE 12
#define OBL_NAN_ABOVE 0x1u		/* oblivious split: NaN sets the bit (CatBoost's AsTrue) */
#define OBL_MAX_DEPTH 16		/* CatBoost's own limit */

/* internal node flags live in the top bits of feat */
#define IN_DEFAULT_RIGHT 0x80000000u
#define IN_ZERO_MISSING 0x40000000u
#define IN_FEATURE_MASK 0x0FFFFFFFu
#define MAX_FEATURES ((uint32_t) IN_FEATURE_MASK)
#define MAX_OUTPUTS 65536u
#define LOCKSTEP 8
#define PERFECT_MAX_DEPTH 12

/* how pgmln_predict_checked looks at a float32 row (see struct pgmln_model) */
#define CHECK_NONE 0			/* every value is scored */
#define CHECK_SCAN 1			/* scan the row for NaN / infinities first */
#define CHECK_SCORES 2			/* linear: only when the raw scores are not finite */

/* LightGBM's kZeroThreshold */
#define ZERO_THRESHOLD 1e-35f

typedef struct
{
	float thr;
	uint32_t feat;
	int32_t child[2]; /* [0] x <= thr, [1] otherwise; a leaf points to itself */
} inode;

/* the perfect layout's feature indices are 16-bit (see walk_plain); models
 * with more features use the explicit layout */
#define PERFECT_MAX_FEATURES 65536u

#define PF_DEFAULT_RIGHT 0x1u
#define PF_ZERO_MISSING 0x2u

/* one input column of the row form (see pgmln_row_encode) */
typedef struct
{
	uint32_t kind, encode, width, offset;
	int has_fill, is_array;
	char *name;
	uint32_t ncat;
	char **cat;			/* category strings, NUL-terminated */
	uint32_t *cat_len;
	uint32_t *slots;		/* open addressing: category index + 1, 0 = empty */
	uint32_t mask;			/* slot count - 1 */
	double *tmeans, tprior;
	double *fill, *center, *scale;
	pgmln_text text;		/* multi_hot, words, tfidf, hashing (text.c) */
	/* pgmln_row_encode_used: the model's used[ulo .. uhi) are this column's, and
	 * `sparse` when its text encoding can be written touched columns only (no
	 * centering or scaling) */
	uint32_t ulo, uhi;
	int sparse;
} rowcol;

/* sizes of the row section, counted while validating it */
typedef struct
{
	uint32_t ncols;
	uint64_t chars, cats, slots, doubles;
	uint64_t scratch;		/* text.c: the longest vocabulary term */
	uint64_t tindex;		/* text.c: the vocabulary indexes (pgmln_text_index_slots) */
} rowsizes;

struct pgmln_model
{
	size_t bytes;
	int kind, task, link;
	uint32_t F, K, C, W;
	int has_pre, has_labels, snap_zero;
	/* input rules (pgmln_predict_checked): blob has them, refuses NaN / infinities,
	 * and how a float32 row is checked (CHECK_*) */
	int rules, refuse_nan, refuse_inf, check;
	double link_param, divisor;
	double *base, *labels, *impute, *shift, *mult;
	/* trees */
	uint32_t n_trees;
	int32_t *root;
	uint32_t *group;
	uint32_t *block_steps; /* per block of LOCKSTEP trees: max height */
	inode *nodes;
	int32_t *leaf_of; /* node -> leaf index (leaves only) */
	double *leaf_values;
	/* perfect layout (used when `perfect`): the trees of block b (LOCKSTEP of
	 * them, the last block padded with always-left lanes) are interleaved in
	 * the node arrays from pblock_off[b]: breadth-first node n of the block's
	 * tree j is at n * LOCKSTEP + j, n < 2^D - 1, D = block_steps[b].  A node
	 * is split over three parallel arrays: its threshold, its bare feature
	 * index (no flag bits to mask off on the hot path) and its missing-value
	 * flags, which only rows with a NaN (or a zero, for zero-as-missing
	 * nodes) read.  Tree t's leaves are pleaves[pleaf_off[t] .. + 2^D * W),
	 * or pleaves_f[..] instead when every leaf value of the model is a
	 * float32 (XGBoost's are): the sums are the same, and the leaves take
	 * half the cache */
	int perfect;
	int any_zero_missing;
	float *pthr;
	uint16_t *pfeat;
	uint8_t *pflags;			/* PF_* */
	uint64_t *pblock_off;
	uint64_t *pleaf_off;
	double *pleaves;
	float *pleaves_f;
	/* linear: coef[j * K + k] is class k's weight of feature j, feature-major (the blob
	 * is class-major): a non-zero feature's K weights are one contiguous run, so a row
	 * costs its non-zero features, each one cache line or two, not K strided loads */
	double *coef;
	/* linear row form (pgmln_predict_used_f64): `lin_sparse` when the model has no
	 * prefix and its columns tile the features in order; then a text column's non-zero
	 * features go to lin_idx/lin_val[offset .. offset + lin_nnz[col]) instead of x */
	int lin_sparse;
	uint32_t *lin_idx;
	double *lin_val;
	uint32_t *lin_nnz;
	/* oblivious trees (n_trees, group shared with the trees above): tree t's
	 * odepth[t] splits follow tree t-1's in ofeat/othr/onan, its 2^odepth[t] * W
	 * leaves follow tree t-1's in oleaves */
	uint32_t *odepth;
	uint32_t *ofeat;
	float *othr;
	uint8_t *onan;
	double *oleaves;
	/* row form: columns and the pools they point into */
	uint32_t n_rowcols;
	rowcol *rowcols;
	char *rchars;
	char **rcats;
	uint32_t *rcat_len;
	uint32_t *rslots;
	double *rdbl;
	char *rtext;			/* text.c scratch: sizes.scratch + 1 bytes */
	/* output section: target transform, snapping scale, binary calibration */
	int out_transform, calib;
	uint32_t n_scale, n_cal;
	double *snap_scale, *cal_x, *cal_y;
	double cal_a, cal_b;
	/* evaluation scratch: a model is for one thread at a time */
	double *acc;
	float *xbuf;
	/* the features the model reads, ascending (mark_used): the split features of trees,
	 * every feature of a linear model.  The row form prepares only these, and the text
	 * encodings write only these and the columns a text touches (text.c) */
	uint32_t n_used;
	uint32_t *used;
	pgmln_text_scratch tsp;	/* row form: pgmln_text_encode_used's scratch, F wide */
	uint32_t *tindex;		/* the pool of the text encodings' vocabulary indexes */
};

/* ---------- checksum ---------- */

static uint32_t crc_table[256];
static int crc_ready = 0;

static void
crc_init(void)
{
	for (uint32_t i = 0; i < 256; i++)
	{
		uint32_t c = i;

		for (int k = 0; k < 8; k++)
			c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
		crc_table[i] = c;
	}
	crc_ready = 1;
}

static uint32_t
crc32_bytes(const unsigned char *p, size_t len)
{
	uint32_t c = 0xFFFFFFFFu;

	if (!crc_ready)
		crc_init();
	for (size_t i = 0; i < len; i++)
		c = crc_table[(c ^ p[i]) & 0xFF] ^ (c >> 8);
	return c ^ 0xFFFFFFFFu;
}

uint64_t
pgmln_hash(const void *data, size_t len)
{
	return crc32_bytes((const unsigned char *) data, len);
}

static uint32_t
rd_u32(const unsigned char *p)
{
	return (uint32_t) p[0] | ((uint32_t) p[1] << 8) | ((uint32_t) p[2] << 16) |
		((uint32_t) p[3] << 24);
}

static uint64_t
rd_u64(const unsigned char *p)
{
	return (uint64_t) rd_u32(p) | ((uint64_t) rd_u32(p + 4) << 32);
}

static double
rd_f64(const unsigned char *p)
{
	uint64_t u = rd_u64(p);
	double d;

	memcpy(&d, &u, sizeof d);
	return d;
}

static float
rd_f32(const unsigned char *p)
{
	uint32_t u = rd_u32(p);
	float f;

	memcpy(&f, &u, sizeof f);
	return f;
}

uint64_t
pgmln_blob_checksum(const void *blob, size_t len)
{
	if (len < TRAILER_SIZE)
		return 0;
	return rd_u32((const unsigned char *) blob + len - TRAILER_SIZE);
}

/* ---------- parsing ---------- */

typedef struct
{
	const unsigned char *p;
	size_t left;
	char *err;
	size_t errlen;
} reader;

static int
fail(char *err, size_t errlen, int code, const char *fmt, const char *detail)
{
	if (err && errlen > 0)
		snprintf(err, errlen, fmt, detail);
	return code;
}

#define FAIL(msg) return fail(err, errlen, PGMLN_ERR_FORMAT, "%s", (msg))

/* reserve n items of size sz, failing on overflow or truncation */
static const unsigned char *
take(reader *r, uint64_t n, size_t sz)
{
	const unsigned char *p;

	if (sz != 0 && n > r->left / sz)
		return NULL;
	p = r->p;
	r->p += n * sz;
	r->left -= n * sz;
	return p;
}

/* bump allocator over the model block */
typedef struct
{
	unsigned char *base;
	size_t used;
} bump;

static void *
bump_take(bump *b, size_t n)
{
	void *p;

	b->used = (b->used + 7) & ~(size_t) 7; /* malloc/palloc give 8-aligned blocks */
	p = b->base ? b->base + b->used : NULL;
	b->used += n;
	return p;
}

static void *
default_alloc(void *ctx, size_t size)
{
	(void) ctx;
	return malloc(size);
}

static int
sane_f64s(const unsigned char *p, uint64_t n, int allow_nan)
{
	for (uint64_t i = 0; i < n; i++)
	{
		double d = rd_f64(p + 8 * i);

		if (isnan(d) ? !allow_nan : isinf(d))
			return 0;
	}
	return 1;
}

/* ---------- perfect layout ---------- */

static inline int32_t
bn_left(const unsigned char *np)
{
	return (int32_t) rd_u32(np);
}

static inline int32_t
bn_right(const unsigned char *np)
{
	return (int32_t) rd_u32(np + 4);
}

/* height of one tree (children follow parents: one forward pass); depth is
 * scratch space of cnt entries */
static uint32_t
tree_height(const unsigned char *tp, uint32_t cnt, uint32_t *depth, int *any_zm)
{
	uint32_t h = 0;

	for (uint32_t i = 0; i < cnt; i++)
		depth[i] = 0;
	for (uint32_t i = 0; i < cnt; i++)
	{
		const unsigned char *np = tp + (size_t) i * BLOB_NODE_SIZE;
		int32_t l = bn_left(np), r = bn_right(np);

		if (depth[i] > h)
			h = depth[i];
		if (l == -1)
			continue;
		if (rd_u32(np + 12) & NODE_ZERO_MISSING)
			*any_zm = 1;
		if (depth[l] < depth[i] + 1)
			depth[l] = depth[i] + 1;
		if (depth[r] < depth[i] + 1)
			depth[r] = depth[i] + 1;
	}
	return h;
}

/*
 * Decide whether the padded breadth-first layout is worth it: every tree is
 * padded to its lock-step block's height, so it pays for shallow trees of
 * similar depth (boosted ensembles), not for deep random forests.
 */
static int
plan_perfect(const unsigned char *tree_nodes_p, const unsigned char *nodes_p, uint32_t n_trees,
			 uint64_t n_nodes, uint32_t *scratch, uint64_t *pn_total, uint64_t *pl_total,
			 int *any_zm)
{
	uint64_t off = 0, pn = 0, pn_padded = 0, pl = 0;
	uint32_t block_h = 0;
	int ok = 1;

	*any_zm = 0;
	for (uint32_t t = 0; t < n_trees; t++)
	{
		uint32_t cnt = rd_u32(tree_nodes_p + 4 * (size_t) t);
		uint32_t h = tree_height(nodes_p + off * BLOB_NODE_SIZE, cnt, scratch, any_zm);

		off += cnt;
		if (h > block_h)
			block_h = h;
		if (t % LOCKSTEP == LOCKSTEP - 1 || t == n_trees - 1)
		{
			uint64_t in_block = t % LOCKSTEP + 1;

			if (block_h > PERFECT_MAX_DEPTH)
				ok = 0;
			else
			{
				/* the decision counts real trees; the block's padding lanes
				 * only add to the allocation */
				pn += in_block * (((uint64_t) 1 << block_h) - 1);
				pn_padded += LOCKSTEP * (((uint64_t) 1 << block_h) - 1);
				pl += in_block * ((uint64_t) 1 << block_h);
			}
			block_h = 0;
		}
	}
	*pn_total = pn_padded;
	*pl_total = pl;
	return ok && pn <= 4 * n_nodes + 1024;
}

/* place tree node n (tree-local) at breadth-first position pos of a tree of
 * height D; a leaf above depth D becomes always-left padding */
static void
fill_perfect(uint32_t W, const unsigned char *tp, const unsigned char *leaves_p,
			 const uint32_t *leaf_rank, int32_t n, uint64_t pos, uint32_t depth, uint32_t D,
			 float *pt, uint16_t *pfe, uint8_t *pf, double *pl, float *plf)
{
	/* pt, pfe and pf point at the tree's lane: its node pos is pt[pos * LOCKSTEP] */
	const unsigned char *np = tp + (size_t) n * BLOB_NODE_SIZE;

	if (depth == D)
	{
		uint64_t leaf = pos - (((uint64_t) 1 << D) - 1);

		for (uint32_t k = 0; k < W; k++)
		{
			double		v = rd_f64(leaves_p + 8 * ((size_t) leaf_rank[n] * W + k));

			if (plf)
				plf[leaf * W + k] = (float) v;	/* exact: checked by the parser */
			else
				pl[leaf * W + k] = v;
		}
		return;
	}
	if (bn_left(np) == -1)
	{
		/* x > +inf is false and NaN defaults left: always left */
		pt[pos * LOCKSTEP] = INFINITY;
		pfe[pos * LOCKSTEP] = 0;
		pf[pos * LOCKSTEP] = 0;
		fill_perfect(W, tp, leaves_p, leaf_rank, n, 2 * pos + 1, depth + 1, D, pt, pfe, pf,
					 pl, plf);
		fill_perfect(W, tp, leaves_p, leaf_rank, n, 2 * pos + 2, depth + 1, D, pt, pfe, pf,
					 pl, plf);
		return;
	}
	{
		uint32_t nflags = rd_u32(np + 12);

		pt[pos * LOCKSTEP] = rd_f32(np + 16);
		pfe[pos * LOCKSTEP] = (uint16_t) rd_u32(np + 8);	/* < F <= 65536 */
		pf[pos * LOCKSTEP] = ((nflags & NODE_DEFAULT_LEFT) ? 0 : PF_DEFAULT_RIGHT) |
			((nflags & NODE_ZERO_MISSING) ? PF_ZERO_MISSING : 0);
	}
	fill_perfect(W, tp, leaves_p, leaf_rank, bn_left(np), 2 * pos + 1, depth + 1, D, pt, pfe, pf,
					 pl, plf);
	fill_perfect(W, tp, leaves_p, leaf_rank, bn_right(np), 2 * pos + 2, depth + 1, D, pt, pfe, pf,
					 pl, plf);
}

static void
build_perfect(pgmln_model *m, const unsigned char *tree_nodes_p, const unsigned char *tree_group_p,
			  const unsigned char *nodes_p, const unsigned char *leaves_p, uint32_t *scratch,
			  uint32_t max_cnt)
{
	uint32_t T = m->n_trees, W = m->W;
	uint64_t off = 0, leaf_base = 0, pn_off = 0, pl_off = 0;
	int zm = 0;

	for (uint32_t b = 0; b < (T + LOCKSTEP - 1) / LOCKSTEP; b++)
		m->block_steps[b] = 0;
	for (uint32_t t = 0; t < T; t++)
	{
		uint32_t cnt = rd_u32(tree_nodes_p + 4 * (size_t) t);
		uint32_t h = tree_height(nodes_p + off * BLOB_NODE_SIZE, cnt, scratch, &zm);

		if (h > m->block_steps[t / LOCKSTEP])
			m->block_steps[t / LOCKSTEP] = h;
		off += cnt;
	}
	/* blocks, and the padding lanes of the last one: always left (x > +inf is
	 * false, NaN defaults left); their leaves are never read */
	for (uint32_t b = 0; b < (T + LOCKSTEP - 1) / LOCKSTEP; b++)
	{
		uint64_t count = LOCKSTEP * (((uint64_t) 1 << m->block_steps[b]) - 1);

		m->pblock_off[b] = pn_off;
		for (uint64_t i = 0; i < count; i++)
		{
			m->pthr[pn_off + i] = INFINITY;
			m->pfeat[pn_off + i] = 0;
			m->pflags[pn_off + i] = 0;
		}
		pn_off += count;
	}
	off = 0;
	for (uint32_t t = 0; t < T; t++)
	{
		uint32_t cnt = rd_u32(tree_nodes_p + 4 * (size_t) t);
		const unsigned char *tp = nodes_p + off * BLOB_NODE_SIZE;
		uint32_t D = m->block_steps[t / LOCKSTEP];
		uint32_t *rank = scratch + max_cnt;
		uint32_t nl = 0;

		m->root[t] = 0;
		m->group[t] = rd_u32(tree_group_p + 4 * (size_t) t);
		for (uint32_t i = 0; i < cnt; i++)
			if (bn_left(tp + (size_t) i * BLOB_NODE_SIZE) == -1)
				rank[i] = nl++;
		m->pleaf_off[t] = pl_off;
		fill_perfect(W, tp, leaves_p + 8 * (size_t) leaf_base * W, rank, 0, 0, 0, D,
					 m->pthr + m->pblock_off[t / LOCKSTEP] + t % LOCKSTEP,
					 m->pfeat + m->pblock_off[t / LOCKSTEP] + t % LOCKSTEP,
					 m->pflags + m->pblock_off[t / LOCKSTEP] + t % LOCKSTEP,
					 m->pleaves_f ? NULL : m->pleaves + pl_off * W,
					 m->pleaves_f ? m->pleaves_f + pl_off * W : NULL);
		pl_off += (uint64_t) 1 << D;
		leaf_base += nl;
		off += cnt;
	}
}

/* ---------- row section ---------- */

static uint32_t
fnv1a(const char *p, size_t len)
{
	uint32_t h = 2166136261u;

	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char) p[i]) * 16777619u;
	return h;
}

static uint32_t
slot_count(uint32_t ncat)
{
	uint32_t n = 8;

	while (n < 2 * (uint64_t) ncat)
		n <<= 1;
	return n;
}

static int
read_u32(reader *r, uint32_t *v)
{
	const unsigned char *p = take(r, 1, 4);

	if (!p)
		return 0;
	*v = rd_u32(p);
	return 1;
}

static int
read_f64s(reader *r, uint64_t n, double *dst, int need_finite)
{
	const unsigned char *p = take(r, n, 8);

	if (!p || (need_finite && !sane_f64s(p, n, 0)))
		return 0;
	if (dst)
		for (uint64_t i = 0; i < n; i++)
			dst[i] = rd_f64(p + 8 * i);
	return 1;
}

/*
 * The parameters of a text encoding (see native.py): tokenizer, n-gram range
 * and flags (words, tfidf, hashing), idf (tfidf).  Like row_section: sz
 * counts (rc == NULL) or rc is filled, *dbl advancing through the pool.
 */
static const char *
text_params(reader *r, rowcol *rc, uint32_t encode, uint32_t ncat, uint32_t width,
			uint32_t maxlen, double **dbl, rowsizes *sz)
{
	uint32_t tokenizer = PGMLN_TEXT_TOKENIZER, lo = 1, hi = 1, tflags = 0;

	if (encode != PGMLN_ENC_MULTI_HOT)
	{
		if (!read_u32(r, &tokenizer) || !read_u32(r, &lo) || !read_u32(r, &hi) ||
			!read_u32(r, &tflags))
			return "truncated text encoding";
		if (tokenizer != PGMLN_TEXT_TOKENIZER)
			return "unknown text tokenizer version";
		if (lo < 1 || lo > hi || hi > PGMLN_MAX_NGRAM || (tflags & ~PGMLN_TEXT_KNOWN_FLAGS))
			return "bad text n-gram range or flags";
	}
	if (rc)
	{
		rc->text.encode = encode;
		rc->text.lo = lo;
		rc->text.hi = hi;
		rc->text.flags = tflags;
		rc->text.width = width;
		rc->text.ncat = ncat;
		rc->text.cat = rc->cat;
		rc->text.cat_len = rc->cat_len;
		rc->text.slots = rc->slots;
		rc->text.mask = rc->mask;
		rc->text.idf = NULL;
		rc->text.maxlen = maxlen;
	}
	else if ((uint64_t) maxlen > sz->scratch)
		sz->scratch = maxlen;
	if (encode == PGMLN_ENC_TFIDF)
	{
		if (!read_f64s(r, ncat, rc ? *dbl : NULL, 1))
			return "truncated or non-finite idf";
		if (rc)
		{
			rc->text.idf = *dbl;
			*dbl += ncat;
		}
		else
			sz->doubles += ncat;
	}
	return NULL;
}

/*
 * Validate (m == NULL: count sizes into *sz) or fill (m != NULL, the pools
 * allocated with the counted sizes) the row section.  Returns NULL on success,
 * else what is wrong.
 */
static const char *
row_section(reader *r, uint32_t F, rowsizes *sz, pgmln_model *m)
{
	uint32_t ncols, offset = 0;
	char *chars = NULL;
	char **cats = NULL;
	uint32_t *cat_lens = NULL, *slots = NULL;
	double *dbl = NULL;

	if (!read_u32(r, &ncols))
		return "truncated row section";
	if (ncols < 1 || ncols > MAX_ROW_COLUMNS)
		return "bad number of row columns";
	if (m)
	{
		m->n_rowcols = ncols;
		chars = m->rchars;
		cats = m->rcats;
		cat_lens = m->rcat_len;
		slots = m->rslots;
		dbl = m->rdbl;
	}
	else
	{
		memset(sz, 0, sizeof *sz);
		sz->ncols = ncols;
	}
	for (uint32_t c = 0; c < ncols; c++)
	{
		uint32_t kind, encode, flags, width, name_len, ncat, maxlen = 0;
		const unsigned char *name;
		rowcol *rc = m ? &m->rowcols[c] : NULL;

		if (!read_u32(r, &kind) || !read_u32(r, &encode) || !read_u32(r, &flags) ||
			!read_u32(r, &width) || !read_u32(r, &name_len))
			return "truncated row column";
		if (kind > PGMLN_COL_TEXT || encode > PGMLN_ENC_HASHING || (flags & ~(COL_FILL | COL_ARRAY)))
			return "unknown row column kind, encoding or flags";
		if ((kind == PGMLN_COL_TEXT) != (encode != PGMLN_ENC_NONE))
			return "row column encoding does not match its kind";
		if (kind == PGMLN_COL_TEXT && ((flags & COL_ARRAY) != 0) != (encode == PGMLN_ENC_MULTI_HOT))
			return "text row columns are arrays for multi_hot only";
		/* one_hot or a vocabulary encoding whose train rows had no value has no inputs */
		if ((width < 1 && encode != PGMLN_ENC_ONE_HOT && encode != PGMLN_ENC_MULTI_HOT &&
			 encode != PGMLN_ENC_WORDS) ||
			width > F - offset)
			return "row column widths do not add up to the number of features";
		if (!(name = take(r, name_len, 1)))
			return "truncated row column name";
		if (memchr(name, 0, name_len))
			return "row column name contains NUL";
		if (!read_u32(r, &ncat))
			return "truncated row categories";
		if (kind != PGMLN_COL_TEXT && ncat != 0)
			return "number row column with categories";
		if (kind == PGMLN_COL_TEXT && ncat > r->left / 4)
			return "truncated row categories";
		if (!(flags & COL_ARRAY) && kind != PGMLN_COL_TEXT && width != 1)
			return "scalar row column must have width 1";
		if (encode == PGMLN_ENC_ONE_HOT || (encode >= PGMLN_ENC_MULTI_HOT &&
											encode <= PGMLN_ENC_TFIDF) ? width != ncat
			: encode == PGMLN_ENC_HASHING ? ncat != 0
			: (kind == PGMLN_COL_TEXT && width != 1))
			return "row column width does not match its encoding";
		if (rc)
		{
			rc->kind = kind;
			rc->encode = encode;
			rc->width = width;
			rc->offset = offset;
			rc->has_fill = (flags & COL_FILL) != 0;
			rc->is_array = (flags & COL_ARRAY) != 0;
			rc->name = chars;
			memcpy(chars, name, name_len);
			chars[name_len] = '\0';
			chars += name_len + 1;
			rc->ncat = ncat;
			rc->cat = cats;
			rc->cat_len = cat_lens;
			rc->slots = NULL;
			rc->mask = 0;
		}
		else
			sz->chars += (uint64_t) name_len + 1;
		if (kind == PGMLN_COL_TEXT)
		{
			uint32_t nslots = slot_count(ncat);

			if (rc)
			{
				rc->slots = slots;
				rc->mask = nslots - 1;
				memset(slots, 0, sizeof(uint32_t) * nslots);
			}
			for (uint32_t k = 0; k < ncat; k++)
			{
				uint32_t clen;
				const unsigned char *cp;

				if (!read_u32(r, &clen) || !(cp = take(r, clen, 1)))
					return "truncated row category";
				if (clen > maxlen)
					maxlen = clen;
				if (rc)
				{
					uint32_t h = fnv1a((const char *) cp, clen) & rc->mask;

					memcpy(chars, cp, clen);
					chars[clen] = '\0';
					cats[k] = chars;
					cat_lens[k] = clen;
					chars += clen + 1;
					/* a repeated category keeps its last index, as a Python dict does */
					while (slots[h] != 0 &&
						   !(cat_lens[slots[h] - 1] == clen &&
							 memcmp(cats[slots[h] - 1], cp, clen) == 0))
						h = (h + 1) & rc->mask;
					slots[h] = k + 1;
				}
				else
					sz->chars += (uint64_t) clen + 1;
			}
			if (rc)
			{
				cats += ncat;
				cat_lens += ncat;
				slots += nslots;
			}
			else
			{
				sz->cats += ncat;
				sz->slots += nslots;
			}
		}
		if (encode >= PGMLN_ENC_MULTI_HOT)
		{
			const char *msg = text_params(r, rc, encode, ncat, width, maxlen, &dbl, sz);

			if (msg)
				return msg;
			if (!rc && encode != PGMLN_ENC_HASHING)
				sz->tindex += pgmln_text_index_slots(ncat);
		}
		if (encode == PGMLN_ENC_TARGET)
		{
			if (!read_f64s(r, (uint64_t) ncat + 1, dbl, 1))
				return "truncated or non-finite target means";
			if (rc)
			{
				rc->tmeans = dbl;
				rc->tprior = dbl[ncat];
				dbl += ncat + 1;
			}
			else
				sz->doubles += (uint64_t) ncat + 1;
		}
		if (flags & COL_FILL)
		{
			if (!read_f64s(r, width, dbl, 1))
				return "truncated or non-finite impute values";
			if (rc)
			{
				rc->fill = dbl;
				dbl += width;
			}
			else
				sz->doubles += width;
		}
		else if (rc)
			rc->fill = NULL;
		if (!read_f64s(r, 2 * (uint64_t) width, dbl, 1))
			return "truncated or non-finite scaling";
		if (rc)
		{
			rc->center = dbl;
			rc->scale = dbl + width;
			dbl += 2 * (size_t) width;
		}
		else
			sz->doubles += 2 * (uint64_t) width;
		offset += width;
	}
	if (offset != F)
		return "row column widths do not add up to the number of features";
	return NULL;
}

/*
 * The output section (flags bit7, pgml_flow/engine/targets.py): what happens to
 * the model's output after its link.  Validated and sized when m is NULL, copied
 * into m otherwise.  Returns an error message, or NULL.
 */
static const char *
output_section(reader *r, uint32_t task, uint32_t K, uint32_t C, uint32_t link,
			   uint32_t *n_scale,
			   uint32_t *n_cal, pgmln_model *m)
{
	uint32_t	transform, ns, cal, np, nd;
	const unsigned char *sp, *cp;

	if (!read_u32(r, &transform) || !read_u32(r, &ns))
		return "truncated output section";
	if (transform > OUT_CLASS_MEDIAN)
		return "unknown output transform";
	if (ns > MAX_SCALE || !(sp = take(r, ns, 8)))
		return "truncated or too long snapping scale";
	if (!sane_f64s(sp, ns, 0))
		return "snapping scale must be finite";
	for (uint32_t i = 1; i < ns; i++)
		if (!(rd_f64(sp + 8 * (size_t) i) > rd_f64(sp + 8 * (size_t) (i - 1))))
			return "snapping scale must be ascending";
	if (transform == OUT_CLASS_MEDIAN)
	{
		if (task != PGMLN_TASK_CLASSIFICATION || link == PGMLN_LINK_NONE ||
			C > MAX_MEDIAN_CLASSES || ns != C)
			return "class median needs a classifier with probabilities and one value per class";
	}
	else if ((transform || ns) && (task != PGMLN_TASK_REGRESSION || K != 1))
		return "output transform or snapping needs a single-output regression";
	if (!read_u32(r, &cal) || !read_u32(r, &np))
		return "truncated calibration";
	if (cal > CAL_ISOTONIC)
		return "unknown calibration";
	if (cal && (task != PGMLN_TASK_CLASSIFICATION || C != 2))
		return "calibration needs a binary classifier";
	if ((cal == 0 && np != 0) || (cal == CAL_SIGMOID && np != 2) ||
		(cal == CAL_ISOTONIC && (np < 1 || np > MAX_SCALE)))
		return "bad number of calibration points";
	nd = cal == CAL_ISOTONIC ? 2 * np : np;
	if (!(cp = take(r, nd, 8)))
		return "truncated calibration points";
	if (!sane_f64s(cp, nd, 0))
		return "calibration points must be finite";
	if (cal == CAL_ISOTONIC)
		for (uint32_t i = 0; i < np; i++)
		{
			double		y = rd_f64(cp + 8 * ((size_t) np + i));

			if (i > 0 && !(rd_f64(cp + 8 * (size_t) i) > rd_f64(cp + 8 * (size_t) (i - 1))))
				return "isotonic calibration points must be ascending";
			if (y < 0.0 || y > 1.0)
				return "isotonic calibration values must be probabilities";
		}
	*n_scale = ns;
	*n_cal = cal == CAL_ISOTONIC ? np : 0;
	if (m)
	{
		m->out_transform = (int) transform;
		m->n_scale = ns;
		for (uint32_t i = 0; i < ns; i++)
			m->snap_scale[i] = rd_f64(sp + 8 * (size_t) i);
		m->calib = (int) cal;
		m->n_cal = *n_cal;
		if (cal == CAL_SIGMOID)
		{
			m->cal_a = rd_f64(cp);
			m->cal_b = rd_f64(cp + 8);
		}
		for (uint32_t i = 0; i < m->n_cal; i++)
		{
			m->cal_x[i] = rd_f64(cp + 8 * (size_t) i);
			m->cal_y[i] = rd_f64(cp + 8 * ((size_t) np + i));
		}
	}
	return NULL;
}

/*
 * The features the model reads (m->used, ascending): the split features of every
 * internal node (explicit trees, from the blob's nodes), of every split (oblivious
 * trees), all of them for a linear model.  Then each row column's range in that list,
 * and the row form's scratch.  Called once the row section is filled.
 */
static void
mark_used(pgmln_model *m, const unsigned char *nodes_p, uint64_t n_nodes,
		  const unsigned char *splits_p, uint64_t n_splits)
{
	uint32_t	n = 0;
	uint64_t	pool = 0;

	for (uint32_t j = 0; j < m->F; j++)
		m->used[j] = m->kind == PGMLN_KIND_LINEAR;
	/* the perfect layout pads shallow leaves with always-left nodes on feature 0 */
	m->used[0] = 1;
	for (uint64_t i = 0; nodes_p && i < n_nodes; i++)
	{
		const unsigned char *np = nodes_p + i * BLOB_NODE_SIZE;

		if (!((int32_t) rd_u32(np) == -1 && (int32_t) rd_u32(np + 4) == -1))
			m->used[rd_u32(np + 8)] = 1;
	}
	for (uint64_t i = 0; splits_p && i < n_splits; i++)
		m->used[rd_u32(splits_p + i * BLOB_SPLIT_SIZE)] = 1;
	for (uint32_t j = 0; j < m->F; j++)
		if (m->used[j])
			m->used[n++] = j;	/* n <= j: compacting in place */
	m->n_used = n;
	for (uint32_t c = 0; c < m->n_rowcols; c++)
	{
		rowcol	   *rc = &m->rowcols[c];
		uint32_t	u = 0;

		while (u < n && m->used[u] < rc->offset)
			u++;
		rc->ulo = u;
		while (u < n && m->used[u] < rc->offset + rc->width)
			u++;
		rc->uhi = u;
		rc->sparse = rc->encode >= PGMLN_ENC_MULTI_HOT;
		if (rc->sparse && rc->encode != PGMLN_ENC_HASHING)
		{
			pgmln_text_index(&rc->text, m->tindex + pool);
			pool += pgmln_text_index_slots(rc->text.ncat);
		}
		for (uint32_t j = 0; j < rc->width && rc->sparse; j++)
			rc->sparse = rc->center[j] == 0.0 && rc->scale[j] == 1.0;
	}
	/* the linear row form's sparse text: no prefix (it would make zeros non-zero) and
	 * columns that tile the features in order, so pgmln_predict_used_f64 can walk them */
	if (m->kind == PGMLN_KIND_LINEAR && m->lin_idx && !m->has_pre)
	{
		uint32_t	next = 0;

		m->lin_sparse = 1;
		for (uint32_t c = 0; c < m->n_rowcols; c++)
		{
			m->lin_sparse &= m->rowcols[c].offset == next;
			next = m->rowcols[c].offset + m->rowcols[c].width;
			m->lin_nnz[c] = 0;
		}
		m->lin_sparse &= next == m->F;
	}
	if (m->tsp.count)
	{
		for (uint32_t j = 0; j < m->F; j++)
			m->tsp.count[j] = 0.0;
		for (uint32_t w = 0; w < (m->F + 63) / 64; w++)
			m->tsp.bits[w] = 0;
	}
}

int
pgmln_parse(const void *blob, size_t len, pgmln_alloc_fn alloc, void *alloc_ctx,
			pgmln_model **out, char *err, size_t errlen)
{
	const unsigned char *b = (const unsigned char *) blob;
	reader r;
	uint32_t version, kind, task, link, F, K, C, flags;
	double link_param, divisor;
	uint64_t body_len;
	const unsigned char *base_p, *labels_p = NULL, *pre_p = NULL;
	const unsigned char *tree_nodes_p = NULL, *tree_group_p = NULL, *nodes_p = NULL,
		*leaves_p = NULL, *coef_p = NULL;
	uint32_t n_trees = 0, W = 0;
	uint64_t n_nodes = 0, n_leaves = 0;
	const unsigned char *odepth_p = NULL, *splits_p = NULL;
	uint64_t n_splits = 0;
	uint32_t n_blocks = 0;
	int perfect = 0, any_zm = 0, leaves_f32 = 1;
	uint64_t pn_total = 0, pl_total = 0;
	uint32_t max_cnt = 0;
	uint32_t *scratch = NULL;
	pgmln_model *m;
	bump bm;
	int pass;
	reader row_r, out_r;
	rowsizes rsz;
	uint32_t n_scale = 0, n_cal = 0;

	*out = NULL;
	if (blob == NULL || len < HEADER_SIZE + TRAILER_SIZE)
		FAIL("blob is too short to be a pgml_native model");
	if (memcmp(b, PGMLN_MAGIC, 8) != 0)
		FAIL("blob does not start with the pgml_native magic");
	version = rd_u32(b + 8);
	if (version != 1 && version != PGMLN_VERSION)
	{
		if (err && errlen > 0)
			snprintf(err, errlen, "blob format version %u is not supported (this build reads %d)",
					 version, PGMLN_VERSION);
		return PGMLN_ERR_VERSION;
	}
	kind = rd_u32(b + 12);
	task = rd_u32(b + 16);
	link = rd_u32(b + 20);
	F = rd_u32(b + 24);
	K = rd_u32(b + 28);
	C = rd_u32(b + 32);
	flags = rd_u32(b + 36);
	link_param = rd_f64(b + 40);
	divisor = rd_f64(b + 48);
	body_len = rd_u64(b + 56);
	if (body_len != (uint64_t) (len - HEADER_SIZE - TRAILER_SIZE))
		FAIL("blob length does not match its header (truncated or padded)");
	if (crc32_bytes(b, len - TRAILER_SIZE) != rd_u32(b + len - TRAILER_SIZE))
		FAIL("blob checksum mismatch (corrupt data)");

	/* header semantics */
	if (kind != PGMLN_KIND_TREES && kind != PGMLN_KIND_LINEAR && kind != PGMLN_KIND_OBLIVIOUS)
		FAIL("unknown model kind");
	if (task != PGMLN_TASK_REGRESSION && task != PGMLN_TASK_CLASSIFICATION)
		FAIL("unknown task");
	if (link > PGMLN_LINK_NONE)
		FAIL("unknown link");
	if (F < 1 || F > MAX_FEATURES)
		FAIL("bad number of features");
	if (K < 1 || K > MAX_OUTPUTS)
		FAIL("bad number of outputs");
	if (flags & ~(FLAG_PREPROCESS | FLAG_LABELS | FLAG_SNAP_ZERO | FLAG_ROW | FLAG_INPUT_RULES |
				  FLAG_REFUSE_NAN | FLAG_REFUSE_INF | FLAG_OUTPUT))
		FAIL("unknown header flags");
	if ((flags & (FLAG_REFUSE_NAN | FLAG_REFUSE_INF)) && !(flags & FLAG_INPUT_RULES))
		FAIL("input rule flags without the input rules flag");
	if ((flags & FLAG_ROW) && version < 2)
		FAIL("row section in a version 1 blob");
	if (!(divisor > 0) || isinf(divisor))
		FAIL("divisor must be a positive finite number");
	if (isnan(link_param) || isinf(link_param))
		FAIL("link parameter must be finite");
	if (task == PGMLN_TASK_REGRESSION)
	{
		if (C != 0)
			FAIL("regression model with classes");
		if (link != PGMLN_LINK_IDENTITY && link != PGMLN_LINK_SIGMOID && link != PGMLN_LINK_EXP)
			FAIL("link not valid for regression");
		if (flags & FLAG_LABELS)
			FAIL("regression model with class labels");
	}
	else
	{
		if (C < 2 || C > MAX_OUTPUTS)
			FAIL("classifier needs at least two classes");
		if (K == 1)
		{
			if (C != 2 || (link != PGMLN_LINK_SIGMOID && link != PGMLN_LINK_NONE))
				FAIL("single-score classifier must be binary with a sigmoid or no link");
		}
		else if (K != C)
			FAIL("classifier must have one score per class or a single score");
		else if (link == PGMLN_LINK_EXP)
			FAIL("exp link not valid for classification");
	}
	if (link == PGMLN_LINK_SIGMOID && !(link_param > 0))
		FAIL("sigmoid slope must be positive");
	if (link == PGMLN_LINK_SOFTMAX && (task != PGMLN_TASK_CLASSIFICATION || K < 2))
		FAIL("softmax needs a multiclass classifier");
	if (link == PGMLN_LINK_OVR && (task != PGMLN_TASK_CLASSIFICATION || K < 2))
		FAIL("one-vs-rest needs a multiclass classifier");

	/* body: read the layout */
	r.p = b + HEADER_SIZE;
	r.left = (size_t) body_len;
	if (!(base_p = take(&r, K, 8)))
		FAIL("truncated base scores");
	if (!sane_f64s(base_p, K, 0))
		FAIL("base scores must be finite");
	if (flags & FLAG_LABELS)
	{
		if (!(labels_p = take(&r, C, 8)))
			FAIL("truncated class labels");
		if (!sane_f64s(labels_p, C, 0))
			FAIL("class labels must be finite");
	}
	if (flags & FLAG_PREPROCESS)
	{
		if (!(pre_p = take(&r, 3 * (uint64_t) F, 8)))
			FAIL("truncated preprocessing");
		if (!sane_f64s(pre_p, F, 1) || !sane_f64s(pre_p + 8 * (size_t) F, 2 * (uint64_t) F, 0))
			FAIL("preprocessing shift and scale must be finite");
	}
	if (kind == PGMLN_KIND_TREES)
	{
		const unsigned char *hdr = take(&r, 16, 1);
		uint64_t total = 0;

		if (!hdr)
			FAIL("truncated tree header");
		n_trees = rd_u32(hdr);
		W = rd_u32(hdr + 4);
		n_nodes = rd_u64(hdr + 8);
		if (n_trees < 1)
			FAIL("tree ensemble without trees");
		if (W != 1 && W != K)
			FAIL("leaf width must be 1 or the number of outputs");
		if (n_nodes < n_trees || n_nodes > (uint64_t) INT32_MAX)
			FAIL("bad node count");
		if (!(tree_nodes_p = take(&r, n_trees, 4)) || !(tree_group_p = take(&r, n_trees, 4)))
			FAIL("truncated tree table");
		for (uint32_t t = 0; t < n_trees; t++)
		{
			uint32_t cnt = rd_u32(tree_nodes_p + 4 * (size_t) t);

			if (cnt < 1)
				FAIL("empty tree");
			total += cnt;
			if (cnt > max_cnt)
				max_cnt = cnt;
			if (rd_u32(tree_group_p + 4 * (size_t) t) >= K)
				FAIL("tree output group out of range");
		}
		if (total != n_nodes)
			FAIL("tree node counts do not add up");
		if (!(nodes_p = take(&r, n_nodes, BLOB_NODE_SIZE)))
			FAIL("truncated nodes");
		/* validate nodes tree by tree */
		{
			uint64_t off = 0;

			for (uint32_t t = 0; t < n_trees; t++)
			{
				uint32_t cnt = rd_u32(tree_nodes_p + 4 * (size_t) t);

				for (uint32_t i = 0; i < cnt; i++)
				{
					const unsigned char *np = nodes_p + (off + i) * BLOB_NODE_SIZE;
					int32_t l = (int32_t) rd_u32(np), rr = (int32_t) rd_u32(np + 4);
					uint32_t feat = rd_u32(np + 8), nflags = rd_u32(np + 12);
					float thr = rd_f32(np + 16);

					if (l == -1 && rr == -1)
					{
						n_leaves++;
						continue;
					}
					if (l <= (int32_t) i || rr <= (int32_t) i || (uint32_t) l >= cnt ||
						(uint32_t) rr >= cnt)
						FAIL("tree child index out of order or out of range");
					if (feat >= F)
						FAIL("split feature out of range");
					if (nflags & ~NODE_KNOWN_FLAGS)
						FAIL("unknown node flags");
					if (isnan(thr))
						FAIL("split threshold is NaN");
				}
				off += cnt;
			}
		}
		if (!(leaves_p = take(&r, n_leaves * W, 8)))
			FAIL("truncated leaf values");
		if (!sane_f64s(leaves_p, n_leaves * W, 0))
			FAIL("leaf values must be finite");
		for (uint64_t i = 0; i < n_leaves * W && leaves_f32; i++)
		{
			double		v = rd_f64(leaves_p + 8 * i);

			leaves_f32 = (double) (float) v == v;
		}
		n_blocks = (n_trees + LOCKSTEP - 1) / LOCKSTEP;
	}
	else if (kind == PGMLN_KIND_OBLIVIOUS)
	{
		const unsigned char *hdr = take(&r, 16, 1);
		uint64_t depths = 0;

		if (!hdr)
			FAIL("truncated oblivious tree header");
		n_trees = rd_u32(hdr);
		W = rd_u32(hdr + 4);
		n_splits = rd_u64(hdr + 8);
		if (n_trees < 1)
			FAIL("tree ensemble without trees");
		if (W != 1 && W != K)
			FAIL("leaf width must be 1 or the number of outputs");
		if (n_splits > (uint64_t) n_trees * OBL_MAX_DEPTH)
			FAIL("bad split count");
		if (!(odepth_p = take(&r, n_trees, 4)) || !(tree_group_p = take(&r, n_trees, 4)))
			FAIL("truncated tree table");
		for (uint32_t t = 0; t < n_trees; t++)
		{
			uint32_t d = rd_u32(odepth_p + 4 * (size_t) t);

			if (d > OBL_MAX_DEPTH)
				FAIL("oblivious tree deeper than 16 levels");
			depths += d;
			n_leaves += (uint64_t) 1 << d;
			if (rd_u32(tree_group_p + 4 * (size_t) t) >= K)
				FAIL("tree output group out of range");
		}
		if (depths != n_splits)
			FAIL("oblivious tree depths do not add up to the split count");
		if (!(splits_p = take(&r, n_splits, BLOB_SPLIT_SIZE)))
			FAIL("truncated splits");
		for (uint64_t i = 0; i < n_splits; i++)
		{
			const unsigned char *sp = splits_p + i * BLOB_SPLIT_SIZE;

			if (rd_u32(sp) >= F)
				FAIL("split feature out of range");
			if (rd_u32(sp + 4) & ~OBL_NAN_ABOVE)
				FAIL("unknown split flags");
			if (isnan(rd_f32(sp + 8)))
				FAIL("split threshold is NaN");
		}
		if (!(leaves_p = take(&r, n_leaves * W, 8)))
			FAIL("truncated leaf values");
		if (!sane_f64s(leaves_p, n_leaves * W, 0))
			FAIL("leaf values must be finite");
	}
	else
	{
		if (!(coef_p = take(&r, (uint64_t) K * F, 8)))
			FAIL("truncated coefficients");
		if (!sane_f64s(coef_p, (uint64_t) K * F, 0))
			FAIL("coefficients must be finite");
	}
	memset(&rsz, 0, sizeof rsz);
	row_r = r;
	if (flags & FLAG_ROW)
	{
		const char *msg = row_section(&r, F, &rsz, NULL);

		if (msg)
			FAIL(msg);
	}
	out_r = r;
	if (flags & FLAG_OUTPUT)
	{
		const char *msg = output_section(&r, task, K, C, link, &n_scale, &n_cal, NULL);

		if (msg)
			FAIL(msg);
	}
	if (r.left != 0)
		FAIL("trailing bytes after the model body");
	if (kind == PGMLN_KIND_TREES)
	{
		/* scratch for heights and leaf ranks; the only temporary allocation,
		 * made before the model block so no error path can leak the block */
		scratch = (uint32_t *) malloc(sizeof(uint32_t) * 2 * (size_t) max_cnt);
		if (!scratch)
			return fail(err, errlen, PGMLN_ERR_NOMEM, "%s", "out of memory loading model");
		perfect = plan_perfect(tree_nodes_p, nodes_p, n_trees, n_nodes, scratch, &pn_total,
							   &pl_total, &any_zm);
		if (F > PERFECT_MAX_FEATURES)
			perfect = 0;
	}

	/* two passes over the layout: size, then fill */
	bm.base = NULL;
	bm.used = 0;
	m = NULL;
	for (pass = 0; pass < 2; pass++)
	{
		pgmln_model *mm;

		bm.used = 0;
		mm = (pgmln_model *) bump_take(&bm, sizeof(pgmln_model));
		if (pass == 1)
		{
			m = mm;
			memset(m, 0, sizeof *m);
		}
#define ALLOC(field, type, count) \
	do { \
		void *p_ = bump_take(&bm, sizeof(type) * (size_t) (count)); \
		if (pass == 1) \
			m->field = (type *) p_; \
	} while (0)
		ALLOC(base, double, K);
		if (flags & FLAG_LABELS)
			ALLOC(labels, double, C);
		if (flags & FLAG_PREPROCESS)
		{
			ALLOC(impute, double, F);
			ALLOC(shift, double, F);
			ALLOC(mult, double, F);
		}
		if (kind == PGMLN_KIND_TREES)
		{
			ALLOC(root, int32_t, n_trees);
			ALLOC(group, uint32_t, n_trees);
			ALLOC(block_steps, uint32_t, n_blocks);
			if (perfect)
			{
				ALLOC(pthr, float, pn_total);
				ALLOC(pfeat, uint16_t, pn_total);
				ALLOC(pflags, uint8_t, pn_total);
				ALLOC(pblock_off, uint64_t, n_blocks);
				ALLOC(pleaf_off, uint64_t, n_trees);
				if (leaves_f32)
					ALLOC(pleaves_f, float, pl_total * W);
				else
					ALLOC(pleaves, double, pl_total * W);
			}
			else
			{
				ALLOC(nodes, inode, n_nodes);
				ALLOC(leaf_of, int32_t, n_nodes);
				ALLOC(leaf_values, double, n_leaves * W);
			}
		}
		else if (kind == PGMLN_KIND_OBLIVIOUS)
		{
			ALLOC(group, uint32_t, n_trees);
			ALLOC(odepth, uint32_t, n_trees);
			ALLOC(ofeat, uint32_t, n_splits);
			ALLOC(othr, float, n_splits);
			ALLOC(onan, uint8_t, n_splits);
			ALLOC(oleaves, double, n_leaves * W);
		}
		else
			ALLOC(coef, double, (size_t) K * F);
		if (flags & FLAG_ROW)
		{
			ALLOC(rowcols, rowcol, rsz.ncols);
			ALLOC(rchars, char, rsz.chars);
			ALLOC(rcats, char *, rsz.cats);
			ALLOC(rcat_len, uint32_t, rsz.cats);
			ALLOC(rslots, uint32_t, rsz.slots);
			ALLOC(rdbl, double, rsz.doubles);
			ALLOC(rtext, char, rsz.scratch + 1);
		}
		if (flags & FLAG_OUTPUT)
		{
			ALLOC(snap_scale, double, n_scale);
			ALLOC(cal_x, double, n_cal);
			ALLOC(cal_y, double, n_cal);
		}
		ALLOC(acc, double, K + (C > K ? C : K));
		ALLOC(xbuf, float, F);
		ALLOC(used, uint32_t, F);
		if (flags & FLAG_ROW)
		{
			ALLOC(tsp.count, double, F);
			ALLOC(tsp.bits, uint64_t, ((uint64_t) F + 63) / 64);
			ALLOC(tsp.touched, uint32_t, F);
			ALLOC(tsp.lower, char, (PGMLN_MAX_NGRAM + 1) * (rsz.scratch + 1));
			/* the text encodings' vocabulary indexes (pgmln_text_index_slots) */
			ALLOC(tindex, uint32_t, rsz.tindex + 1);
			if (kind == PGMLN_KIND_LINEAR)
			{
				ALLOC(lin_idx, uint32_t, F);
				ALLOC(lin_val, double, F);
				ALLOC(lin_nnz, uint32_t, rsz.ncols + 1);
			}
		}
#undef ALLOC
		if (pass == 0)
		{
			if (bm.used <= SIZE_MAX / 2)
				bm.base = (unsigned char *) (alloc ? alloc(alloc_ctx, bm.used)
												   : default_alloc(NULL, bm.used));
			if (!bm.base)
			{
				free(scratch);
				return fail(err, errlen, PGMLN_ERR_NOMEM, "%s", "out of memory loading model");
			}
		}
	}

	m->bytes = bm.used;
	m->kind = (int) kind;
	m->task = (int) task;
	m->link = (int) link;
	m->F = F;
	m->K = K;
	m->C = C;
	m->W = W;
	m->has_pre = (flags & FLAG_PREPROCESS) != 0;
	m->has_labels = (flags & FLAG_LABELS) != 0;
	m->snap_zero = (flags & FLAG_SNAP_ZERO) != 0;
	m->rules = (flags & FLAG_INPUT_RULES) != 0;
	m->refuse_nan = (flags & FLAG_REFUSE_NAN) != 0;
	m->refuse_inf = (flags & FLAG_REFUSE_INF) != 0;
	/* a blob from before input rules: only LightGBM's (the one compiler that sets
	 * snap_zero) is known to score every value; the others' NaN and infinities go
	 * to the Python path (PGMLN_UNDECIDED) until the model is retrained */
	if (!m->rules && m->snap_zero)
		m->rules = 1;
	if (m->rules && !m->refuse_nan && !m->refuse_inf)
		m->check = CHECK_NONE;
	else
		m->check = kind == PGMLN_KIND_LINEAR ? CHECK_SCORES : CHECK_SCAN;
	m->link_param = link_param;
	m->divisor = divisor;
	for (uint32_t k = 0; k < K; k++)
		m->base[k] = rd_f64(base_p + 8 * (size_t) k);
	if (m->has_labels)
		for (uint32_t c = 0; c < C; c++)
			m->labels[c] = rd_f64(labels_p + 8 * (size_t) c);
	if (m->has_pre)
		for (uint32_t j = 0; j < F; j++)
		{
			m->impute[j] = rd_f64(pre_p + 8 * (size_t) j);
			m->shift[j] = rd_f64(pre_p + 8 * ((size_t) F + j));
			m->mult[j] = rd_f64(pre_p + 8 * (2 * (size_t) F + j));
		}
	if (flags & FLAG_ROW)
		(void) row_section(&row_r, F, NULL, m); /* validated above: cannot fail */
	if (flags & FLAG_OUTPUT)
		(void) output_section(&out_r, task, K, C, link, &n_scale, &n_cal, m);
	mark_used(m, nodes_p, n_nodes, splits_p, n_splits);
	if (kind == PGMLN_KIND_TREES)
	{
		uint64_t off = 0, leaf = 0;

		m->n_trees = n_trees;
		m->perfect = perfect;
		m->any_zero_missing = any_zm;
		if (perfect)
		{
			build_perfect(m, tree_nodes_p, tree_group_p, nodes_p, leaves_p, scratch, max_cnt);
			free(scratch);
			*out = m;
			return PGMLN_OK;
		}
		free(scratch);
		for (uint64_t i = 0; i < n_leaves * W; i++)
			m->leaf_values[i] = rd_f64(leaves_p + 8 * i);
		for (uint32_t b2 = 0; b2 < n_blocks; b2++)
			m->block_steps[b2] = 0;
		for (uint32_t t = 0; t < n_trees; t++)
		{
			uint32_t cnt = rd_u32(tree_nodes_p + 4 * (size_t) t);

			m->root[t] = (int32_t) off;
			m->group[t] = rd_u32(tree_group_p + 4 * (size_t) t);
			for (uint32_t i = 0; i < cnt; i++)
			{
				const unsigned char *np = nodes_p + (off + i) * BLOB_NODE_SIZE;
				int32_t l = (int32_t) rd_u32(np), rr = (int32_t) rd_u32(np + 4);
				inode *nd = &m->nodes[off + i];

				if (l == -1 && rr == -1)
				{
					nd->thr = 0.0f;
					nd->feat = 0;
					nd->child[0] = nd->child[1] = (int32_t) (off + i);
					m->leaf_of[off + i] = (int32_t) leaf++;
				}
				else
				{
					uint32_t nflags = rd_u32(np + 12);

					nd->thr = rd_f32(np + 16);
					nd->feat = rd_u32(np + 8) |
						((nflags & NODE_DEFAULT_LEFT) ? 0 : IN_DEFAULT_RIGHT) |
						((nflags & NODE_ZERO_MISSING) ? IN_ZERO_MISSING : 0);
					nd->child[0] = (int32_t) off + l;
					nd->child[1] = (int32_t) off + rr;
					m->leaf_of[off + i] = -1;
				}
			}
			off += cnt;
		}
		/*
		 * Tree heights bound the lock-step walk.  Children come after parents,
		 * so one forward pass propagates depths; internal nodes keep their
		 * depth in leaf_of as -(depth + 1) meanwhile (no extra allocation),
		 * and are reset to -1 afterwards.
		 */
		off = 0;
		for (uint32_t t = 0; t < n_trees; t++)
		{
			uint32_t cnt = rd_u32(tree_nodes_p + 4 * (size_t) t);
			int32_t height = 0;

			for (uint32_t i = 0; i < cnt; i++)
			{
				const inode *nd = &m->nodes[off + i];
				int32_t d;

				if (m->leaf_of[off + i] >= 0)
					continue;
				d = -m->leaf_of[off + i] - 1;
				for (int c = 0; c < 2; c++)
				{
					int32_t ch = nd->child[c];

					if (m->leaf_of[ch] >= 0)
					{
						if (d + 1 > height)
							height = d + 1;
					}
					else if (-m->leaf_of[ch] - 1 < d + 1)
						m->leaf_of[ch] = -(d + 2);
				}
			}
			for (uint32_t i = 0; i < cnt; i++)
				if (m->leaf_of[off + i] < 0)
					m->leaf_of[off + i] = -1;
			if ((uint32_t) height > m->block_steps[t / LOCKSTEP])
				m->block_steps[t / LOCKSTEP] = (uint32_t) height;
			off += cnt;
		}
	}
	else if (kind == PGMLN_KIND_OBLIVIOUS)
	{
		m->n_trees = n_trees;
		for (uint32_t t = 0; t < n_trees; t++)
		{
			m->odepth[t] = rd_u32(odepth_p + 4 * (size_t) t);
			m->group[t] = rd_u32(tree_group_p + 4 * (size_t) t);
		}
		for (uint64_t i = 0; i < n_splits; i++)
		{
			const unsigned char *sp = splits_p + i * BLOB_SPLIT_SIZE;

			m->ofeat[i] = rd_u32(sp);
			m->onan[i] = (uint8_t) (rd_u32(sp + 4) & OBL_NAN_ABOVE);
			m->othr[i] = rd_f32(sp + 8);
		}
		for (uint64_t i = 0; i < n_leaves * W; i++)
			m->oleaves[i] = rd_f64(leaves_p + 8 * i);
	}
	else
	{
		/* the blob's class-major rows, feature-major in memory (see coef) */
		for (uint32_t k = 0; k < K; k++)
			for (uint32_t j = 0; j < F; j++)
				m->coef[(size_t) j * K + k] = rd_f64(coef_p + 8 * ((size_t) k * F + j));
	}
	*out = m;
	return PGMLN_OK;
}

void
pgmln_free(pgmln_model *m)
{
	free(m);
}

/* ---------- properties ---------- */

size_t
pgmln_model_bytes(const pgmln_model *m)
{
	return m->bytes;
}

int
pgmln_kind(const pgmln_model *m)
{
	return m->kind;
}

int
pgmln_task(const pgmln_model *m)
{
	/* a class median model is a regression model to its callers: no probabilities */
	return m->out_transform == OUT_CLASS_MEDIAN ? PGMLN_TASK_REGRESSION : m->task;
}

int
pgmln_num_features(const pgmln_model *m)
{
	return (int) m->F;
}

int
pgmln_num_classes(const pgmln_model *m)
{
	return (int) m->C;
}

int
pgmln_has_scalar(const pgmln_model *m)
{
	return m->task == PGMLN_TASK_CLASSIFICATION || m->K == 1;
}

int
pgmln_vector_width(const pgmln_model *m)
{
	if (m->task == PGMLN_TASK_CLASSIFICATION)
		return m->link == PGMLN_LINK_NONE ? 0 : (int) m->C;
	return (int) m->K;
}

/* ---------- evaluation ---------- */

/* feature j through the preprocessing prefix (impute, then the affine map), in double */
static inline double
pre_value(const pgmln_model *m, uint32_t j, double d)
{
	if (isnan(d))
		d = m->impute[j];		/* NaN impute value leaves it missing */
	return (d - m->shift[j]) * m->mult[j];
}

/*
 * The float32 row the trees read: the optional prefix applied in double, then
 * LightGBM's input rule (its predictor drops |x| <= 1e-35 as sparse zeros, so
 * such values compare as 0.0).  The row is float32 (xf) or, in the row form,
 * double (xd, converted as the libraries convert it); the other is NULL.  A
 * float32 is exactly a double, so both give the same float of the same value.
 * Only the features the trees read: the row form's rows are thousands wide
 * with text, of which the splits read a few hundred.  Inlined into each
 * caller, where one of xf, xd is a constant NULL.
 */
static inline const float *
prepare(const pgmln_model *m, const float *xf, const double *xd)
{
	if (xf != NULL && !m->has_pre && !m->snap_zero)
		return xf;
	for (uint32_t u = 0; u < m->n_used; u++)
	{
		uint32_t j = m->used[u];
		double d = xf != NULL ? (double) xf[j] : xd[j];
		float v = (float) (m->has_pre ? pre_value(m, j, d) : d);

		if (m->snap_zero && fabsf(v) <= ZERO_THRESHOLD)
			v = 0.0f;
		m->xbuf[j] = v;
	}
	return m->xbuf;
}

static inline int32_t
step(const inode *nodes, int32_t n, const float *x)
{
	const inode *nd = &nodes[n];
	uint32_t f = nd->feat;
	float v = x[f & IN_FEATURE_MASK];
	int missing = isnan(v) | ((f & IN_ZERO_MISSING) != 0 && fabsf(v) <= ZERO_THRESHOLD);
	int right = missing ? (f >> 31) : (v > nd->thr);

	return nd->child[right];
}

/* full missing-value semantics for one node of the perfect layout */
static inline int
go_right(float thr, uint8_t flags, float v)
{
	int missing = isnan(v) | ((flags & PF_ZERO_MISSING) != 0 && fabsf(v) <= ZERO_THRESHOLD);

	return missing ? (int) (flags & PF_DEFAULT_RIGHT) : (v > thr);
}

/* a row without NaN (nor zeros, if some node treats zero as missing) can
 * skip the missing-value logic at every node */
static inline int
row_is_plain(const pgmln_model *m, const float *x)
{
	int special = 0;

	/* the features the trees read (feature 0 among them: the padding's) */
	for (uint32_t u = 0; u < m->n_used; u++)
	{
		uint32_t j = m->used[u];

		special |= isnan(x[j]) | (m->any_zero_missing && fabsf(x[j]) <= ZERO_THRESHOLD);
	}
	return !special;
}

/* leaf value i of the perfect layout */
static inline double
pleaf(const pgmln_model *m, uint64_t i)
{
	return m->pleaves_f ? (double) m->pleaves_f[i] : m->pleaves[i];
}

static inline void
add_leaf(const pgmln_model *m, uint32_t t, uint64_t leaf, double *acc)
{
	uint64_t	i = (m->pleaf_off[t] + leaf) * m->W;

	if (m->W == 1)
		acc[m->group[t]] += pleaf(m, i);
	else
		for (uint32_t k = 0; k < m->W; k++)
			acc[k] += pleaf(m, i + k);
}

/*
 * Perfect layout: node n's children are 2n+1 and 2n+2, so a step is a load
 * of (feature, threshold), a load of x and a compare; no child pointer load
 * sits on the dependency chain.  The LOCKSTEP trees of a block advance
 * together, and since they are interleaved (node n of lane j at
 * n * LOCKSTEP + j) one base pointer per array addresses all of them.  The last,
 * partial block runs in lock step too, its padding lanes going left to
 * leaves that are never read.
 *
 * A walk is bound by the latency of its steps: load the node's feature
 * index, load x[feature], compare.  Three things shorten or overlap it, each
 * measured on a 2-vCPU AMD EPYC (depth-6 XGBoost, evaluator alone):
 *
 * - Rows without missing values walk two blocks of the same height at once,
 *   sixteen independent chains (eight leave the core idle).
 * - The feature indices are 16-bit and kept apart from the thresholds: a
 *   100-tree depth-6 model's nodes are ~50 kB, more than L1, so with 8-byte
 *   (threshold, feature) nodes the load that starts each step came from L2;
 *   its 16-bit features take 13 kB and stay in L1, while the threshold load,
 *   whose address is known as early, is off the chain.
 * - On x86-64 a step is five instructions instead of the compiler's eight or
 *   nine (setcc, zero extension and 2n + 1 + c on the chain): positions are
 *   1-based (m = n + 1, children 2m and 2m + 1), "comiss x[feat], thr" sets
 *   the carry exactly when x > thr (for non-NaN x, which is what this path
 *   gets), and "adc m, m" is the next position 2m + carry.
 *
 * Not kept, because slower: three blocks at once (positions spill), a
 * two-level step loading a node and both children at once (half the steps
 * on the chain but three times the loads), prefetching the children, AVX2
 * gathers (twice as slow as scalar code).
 */
#if defined(__x86_64__) && defined(__GNUC__)
/* the displacements below hard-code LOCKSTEP */
typedef char pstep_layout_check[LOCKSTEP == 8 ? 1 : -1];

/* step lane J (a literal 0..7) of the block whose thresholds and features
 * start at th and fe: node m (1-based) is element 8 (m - 1) + J of each;
 * with t = 8m its feature is at fe + 2t - 16 + 2J, its threshold at
 * th + 4t - 32 + 4J */
#define PSTEP(TH, FE, X, mm, J) \
	do { \
		uint64_t	t_, f_; \
		float		thr_; \
		__asm__("leaq (,%[m],8), %[t]\n\t" \
				"movzwl -16+2*" #J "(%[fe],%[t],2), %k[f]\n\t" \
				"movss -32+4*" #J "(%[th],%[t],4), %[thr]\n\t" \
				"comiss (%[x],%[f],4), %[thr]\n\t" \
				"adcq %[m], %[m]" \
				: [m] "+r"(mm), [t] "=&r"(t_), [f] "=&r"(f_), [thr] "=&x"(thr_) \
				: [th] "r"(TH), [fe] "r"(FE), [x] "r"(X) \
				: "cc"); \
	} while (0)
/* the steps read memory they do not declare (nodes and row): a "memory"
 * clobber here orders the row's stores before it, and the steps use the
 * pointer it returns, so they cannot be moved above it */
#define PSTEP_FENCE(X) __asm__("" : "+r"(X) : : "memory")
#else
#define PSTEP(TH, FE, X, mm, J) \
	do { \
		size_t		i_ = ((mm) - 1) * LOCKSTEP + (J); \
		(mm) = 2 * (mm) + ((X)[(FE)[i_]] > (TH)[i_]); \
	} while (0)
#define PSTEP_FENCE(X) ((void) 0)
#endif

/* n receives the 0-based final positions */
static inline void
walk_plain(const float *th, const uint16_t *fe, uint32_t D, const float *x, size_t *n)
{
	uint64_t	m0 = 1, m1 = 1, m2 = 1, m3 = 1, m4 = 1, m5 = 1, m6 = 1, m7 = 1;

	PSTEP_FENCE(x);
	for (uint32_t d = 0; d < D; d++)
	{
		PSTEP(th, fe, x, m0, 0);
		PSTEP(th, fe, x, m1, 1);
		PSTEP(th, fe, x, m2, 2);
		PSTEP(th, fe, x, m3, 3);
		PSTEP(th, fe, x, m4, 4);
		PSTEP(th, fe, x, m5, 5);
		PSTEP(th, fe, x, m6, 6);
		PSTEP(th, fe, x, m7, 7);
	}
	n[0] = m0 - 1;
	n[1] = m1 - 1;
	n[2] = m2 - 1;
	n[3] = m3 - 1;
	n[4] = m4 - 1;
	n[5] = m5 - 1;
	n[6] = m6 - 1;
	n[7] = m7 - 1;
}

/* two blocks of height D: na for (th, fe), nb for (th2, fe2) */
static inline void
walk_plain2(const float *th, const uint16_t *fe, const float *th2, const uint16_t *fe2,
			uint32_t D, const float *x, size_t *na, size_t *nb)
{
	uint64_t	a0 = 1, a1 = 1, a2 = 1, a3 = 1, a4 = 1, a5 = 1, a6 = 1, a7 = 1;
	uint64_t	b0 = 1, b1 = 1, b2 = 1, b3 = 1, b4 = 1, b5 = 1, b6 = 1, b7 = 1;

	PSTEP_FENCE(x);
	for (uint32_t d = 0; d < D; d++)
	{
		PSTEP(th, fe, x, a0, 0);
		PSTEP(th2, fe2, x, b0, 0);
		PSTEP(th, fe, x, a1, 1);
		PSTEP(th2, fe2, x, b1, 1);
		PSTEP(th, fe, x, a2, 2);
		PSTEP(th2, fe2, x, b2, 2);
		PSTEP(th, fe, x, a3, 3);
		PSTEP(th2, fe2, x, b3, 3);
		PSTEP(th, fe, x, a4, 4);
		PSTEP(th2, fe2, x, b4, 4);
		PSTEP(th, fe, x, a5, 5);
		PSTEP(th2, fe2, x, b5, 5);
		PSTEP(th, fe, x, a6, 6);
		PSTEP(th2, fe2, x, b6, 6);
		PSTEP(th, fe, x, a7, 7);
		PSTEP(th2, fe2, x, b7, 7);
	}
	na[0] = a0 - 1;
	na[1] = a1 - 1;
	na[2] = a2 - 1;
	na[3] = a3 - 1;
	na[4] = a4 - 1;
	na[5] = a5 - 1;
	na[6] = a6 - 1;
	na[7] = a7 - 1;
	nb[0] = b0 - 1;
	nb[1] = b1 - 1;
	nb[2] = b2 - 1;
	nb[3] = b3 - 1;
	nb[4] = b4 - 1;
	nb[5] = b5 - 1;
	nb[6] = b6 - 1;
	nb[7] = b7 - 1;
}

/* rows with missing values (or zeros, where a node reads zero as missing) */
static inline void
walk_missing(const float *th, const uint16_t *fe, const uint8_t *nf, uint32_t D, const float *x,
			 size_t *n)
{
	for (int j = 0; j < LOCKSTEP; j++)
		n[j] = 0;
	for (uint32_t d = 0; d < D; d++)
		for (int j = 0; j < LOCKSTEP; j++)
		{
			size_t		i = n[j] * LOCKSTEP + j;

			n[j] = 2 * n[j] + 1 + go_right(th[i], nf[i], x[fe[i]]);
		}
}

/*
 * The order of the additions is part of the results (they must not change by
 * a bit for a given blob): with one output, the full blocks' leaves are summed
 * in tree order into `sum`, the partial block's straight into acc[0] (which
 * starts at 0), and then the two are added.
 */
static void
raw_trees_perfect(const pgmln_model *m, const float *x, double *acc)
{
	uint32_t T = m->n_trees;
	uint32_t n_blocks = (T + LOCKSTEP - 1) / LOCKSTEP;
	int plain = row_is_plain(m, x);
	int single = m->K == 1;	/* sum in a register, not through acc[] in memory */
	double sum = 0.0;
	size_t		n[2 * LOCKSTEP];	/* size_t: no zero extension in the address */

	for (uint32_t blk = 0; blk < n_blocks; blk++)
	{
		uint64_t	off = m->pblock_off[blk];
		uint32_t D = m->block_steps[blk];
		uint32_t first_leaf = (1u << D) - 1;
		uint32_t t0 = blk * LOCKSTEP;
		int pair = plain && blk + 1 < n_blocks && m->block_steps[blk + 1] == D;
		uint32_t in_walk = (pair ? 2 : 1) * LOCKSTEP;

		if (pair)
		{
			uint64_t	off2 = m->pblock_off[blk + 1];

			walk_plain2(m->pthr + off, m->pfeat + off, m->pthr + off2, m->pfeat + off2, D, x,
						n, n + LOCKSTEP);
		}
		else if (plain)
			walk_plain(m->pthr + off, m->pfeat + off, D, x, n);
		else
			walk_missing(m->pthr + off, m->pfeat + off, m->pflags + off, D, x, n);
		if (T - t0 < in_walk)
			in_walk = T - t0;
		for (uint32_t j = 0; j < in_walk; j++)
		{
			uint32_t t = t0 + j;

			if (single && t < T - T % LOCKSTEP)
				sum += pleaf(m, m->pleaf_off[t] + n[j] - first_leaf);
			else
				add_leaf(m, t, n[j] - first_leaf, acc);
		}
		blk += pair;
	}
	if (single)
		acc[0] += sum;
}

static void
raw_trees(const pgmln_model *m, const float *x, double *acc)
{
	const inode *nodes = m->nodes;
	uint32_t T = m->n_trees, K = m->K, W = m->W;

	for (uint32_t k = 0; k < K; k++)
		acc[k] = 0.0;
	if (m->perfect)
	{
		raw_trees_perfect(m, x, acc);
		for (uint32_t k = 0; k < K; k++)
			acc[k] = m->base[k] + acc[k] / m->divisor;
		return;
	}
	for (uint32_t t0 = 0, blk = 0; t0 < T; t0 += LOCKSTEP, blk++)
	{
		uint32_t steps = m->block_steps[blk];
		int32_t cur[LOCKSTEP];

		if (T - t0 >= LOCKSTEP)
		{
			for (int j = 0; j < LOCKSTEP; j++)
				cur[j] = m->root[t0 + j];
			for (uint32_t s = 0; s < steps; s++)
			{
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC unroll 8
#endif
				for (int j = 0; j < LOCKSTEP; j++)
					cur[j] = step(nodes, cur[j], x);
			}
			if (W == 1)
				for (int j = 0; j < LOCKSTEP; j++)
					acc[m->group[t0 + j]] += m->leaf_values[m->leaf_of[cur[j]]];
			else
				for (int j = 0; j < LOCKSTEP; j++)
				{
					const double *lv = m->leaf_values + (size_t) m->leaf_of[cur[j]] * W;

					for (uint32_t k = 0; k < W; k++)
						acc[k] += lv[k];
				}
		}
		else
		{
			for (uint32_t t = t0; t < T; t++)
			{
				int32_t n = m->root[t];

				while (m->leaf_of[n] < 0)
					n = step(nodes, n, x);
				if (W == 1)
					acc[m->group[t]] += m->leaf_values[m->leaf_of[n]];
				else
				{
					const double *lv = m->leaf_values + (size_t) m->leaf_of[n] * W;

					for (uint32_t k = 0; k < W; k++)
						acc[k] += lv[k];
				}
			}
		}
	}
	for (uint32_t k = 0; k < K; k++)
		acc[k] = m->base[k] + acc[k] / m->divisor;
}

/*
 * Oblivious trees (CatBoost): every node of a level tests the same feature
 * against the same threshold, so a tree is its depth's list of splits and the
 * leaf index is the bit pattern of their outcomes (bit d: level d's x >
 * threshold, in float32 as CatBoost compares; NaN is below everything unless
 * the split says otherwise).  No branches and no child loads: each tree costs
 * depth compares, and the trees' leaves are summed in CatBoost's order.
 */
static void
raw_oblivious(const pgmln_model *m, const float *x, double *acc)
{
	const uint32_t *feat = m->ofeat;
	const float *thr = m->othr;
	const uint8_t *nan_above = m->onan;
	const double *leaves = m->oleaves;
	uint32_t T = m->n_trees, K = m->K, W = m->W;

	for (uint32_t k = 0; k < K; k++)
		acc[k] = 0.0;
	for (uint32_t t = 0; t < T; t++)
	{
		uint32_t D = m->odepth[t];
		uint32_t idx = 0;

		for (uint32_t d = 0; d < D; d++)
		{
			float v = x[feat[d]];

			idx |= (uint32_t) ((v > thr[d]) | (nan_above[d] & (v != v))) << d;
		}
		if (W == 1)
			acc[m->group[t]] += leaves[idx];
		else
			for (uint32_t k = 0; k < W; k++)
				acc[k] += leaves[(size_t) idx * W + k];
		feat += D;
		thr += D;
		nan_above += D;
		leaves += ((size_t) 1 << D) * W;
	}
	for (uint32_t k = 0; k < K; k++)
		acc[k] = m->base[k] + acc[k] / m->divisor;
}

/* acc[k] += class k's weight of feature j times v, for every class (feature-major) */
static inline void
add_feature(const pgmln_model *m, uint32_t j, double v, double *acc)
{
	const double *w = m->coef + (size_t) j * m->K;

	for (uint32_t k = 0; k < m->K; k++)
		acc[k] += w[k] * v;
}

/*
 * Each class's sum runs over the features in order, from 0.0, then adds the intercept:
 * the class-major loop's order for every class, so the same sums to the bit.  A zero
 * feature is skipped: w * 0 is a signed zero, and a sum that starts at +0.0 is never
 * -0.0, so adding it changes nothing (the coefficients are finite; a NaN is not zero).
 */
/* feature j's value as the sums take it (the preprocessing prefix's impute and affine
 * map applied); false: a zero without a prefix, which the sums skip */
static inline bool
linear_input(const pgmln_model *m, uint32_t j, double *v)
{
	if (m->has_pre)
	{
		*v = pre_value(m, j, *v);
		return true;
	}
	return *v != 0.0;
}

/*
 * Of a float32 row (xf) or of the row form's double row (xd; scikit-learn
 * computes in double), the other NULL: a float32 widens to the double it is, so
 * the same sums.  Inlined into each caller, where one of xf, xd is a constant NULL.
 */
static inline void
raw_linear(const pgmln_model *m, const float *xf, const double *xd, double *acc)
{
	for (uint32_t k = 0; k < m->K; k++)
		acc[k] = 0.0;
	for (uint32_t j = 0; j < m->F; j++)
	{
		double		v = xf != NULL ? (double) xf[j] : xd[j];

		if (linear_input(m, j, &v))
			add_feature(m, j, v, acc);
	}
	for (uint32_t k = 0; k < m->K; k++)
		acc[k] += m->base[k];
}

/* raw scores of a float32 row (xf) or a double row (xd), the other NULL */
static inline void
raw_scores(const pgmln_model *m, const float *xf, const double *xd, double *acc)
{
	if (m->kind == PGMLN_KIND_TREES)
		raw_trees(m, prepare(m, xf, xd), acc);
	else if (m->kind == PGMLN_KIND_OBLIVIOUS)
		raw_oblivious(m, prepare(m, xf, xd), acc);
	else
		raw_linear(m, xf, xd, acc); /* linear applies preprocessing in double */
}

static inline double
sigmoid(double z)
{
	return 1.0 / (1.0 + exp(-z));
}

/* nearest value of the ascending scale; halfway goes to the smaller (targets.snap) */
static double
snap_to(const double *s, uint32_t n, double v)
{
	uint32_t	lo = 0,
				hi = n;
	double		a,
				b;

	if (isnan(v) || n == 0)
		return v;
	if (n == 1)
		return s[0];
	while (lo < hi)				/* first index with s[i] >= v, as numpy's searchsorted */
	{
		uint32_t	mid = lo + (hi - lo) / 2;

		if (s[mid] < v)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < 1)
		lo = 1;
	if (lo > n - 1)
		lo = n - 1;
	a = s[lo - 1];
	b = s[lo];
	return (b - v < v - a) ? b : a;
}

/* a regression output after the target options: expm1, then snapping */
static inline double
output_value(const pgmln_model *m, double v)
{
	if (m->out_transform == OUT_EXPM1)
		v = expm1(v);
	return m->n_scale ? snap_to(m->snap_scale, m->n_scale, v) : v;
}

/* calibrated probability of class 1 (targets.calibrate: np.interp for isotonic) */
static double
calibrate(const pgmln_model *m, double p)
{
	if (m->calib == CAL_SIGMOID)
	{
		double		c = p < CAL_EPS ? CAL_EPS : (p > 1.0 - CAL_EPS ? 1.0 - CAL_EPS : p);
		double		z = m->cal_a * (log(c) - log1p(-c)) + m->cal_b;

		return 1.0 / (1.0 + exp(-z));
	}
	if (m->calib == CAL_ISOTONIC)
	{
		const double *x = m->cal_x,
				   *y = m->cal_y;
		uint32_t	n = m->n_cal,
					lo = 0,
					hi;

		if (isnan(p))
			return p;
		if (p <= x[0])
			return y[0];
		if (p >= x[n - 1])
			return y[n - 1];
		hi = n - 1;				/* x[lo] <= p < x[hi] */
		while (hi - lo > 1)
		{
			uint32_t	mid = lo + (hi - lo) / 2;

			if (x[mid] <= p)
				lo = mid;
			else
				hi = mid;
		}
		return (y[hi] - y[lo]) / (x[hi] - x[lo]) * (p - x[lo]) + y[lo];
	}
	return p;
}

static void vector_from_link(const pgmln_model *m, const double *raw, double *out);

/*
 * The lower weighted median of the class values (snap_scale) under the class
 * probabilities: the first class whose cumulative probability reaches half the
 * total, summed in class order (engine/targets_classes.py class_median).
 */
static double
class_median(const pgmln_model *m, const double *raw)
{
	double		p[MAX_MEDIAN_CLASSES];
	double		total = 0.0,
				cum = 0.0,
				half;
	uint32_t	C = m->C;

	vector_from_link(m, raw, p);
	for (uint32_t k = 0; k < C; k++)
		total += p[k];
	if (isnan(total))
		return total;
	half = 0.5 * total - 1e-12;
	for (uint32_t k = 0; k < C; k++)
	{
		cum += p[k];
		if (!(cum < half))
			return m->snap_scale[k];
	}
	return m->snap_scale[C - 1];
}

static double
scalar_from_raw(const pgmln_model *m, const double *raw)
{
	if (m->out_transform == OUT_CLASS_MEDIAN)
		return class_median(m, raw);
	if (m->task == PGMLN_TASK_CLASSIFICATION)
	{
		uint32_t best = 0;

		if (m->K == 1)
			best = raw[0] > 0.0 ? 1 : 0;
		else
			for (uint32_t k = 1; k < m->K; k++)
				if (raw[k] > raw[best])
					best = k;
		return m->has_labels ? m->labels[best] : (double) best;
	}
	switch (m->link)
	{
		case PGMLN_LINK_SIGMOID:
			return output_value(m, sigmoid(m->link_param * raw[0]));
		case PGMLN_LINK_EXP:
			return output_value(m, exp(raw[0]));
		default:
			return output_value(m, raw[0]);
	}
}

static void vector_from_link(const pgmln_model *m, const double *raw, double *out);

/* the vector outputs, then the output section: calibration (binary) or the transform */
static void
vector_from_raw(const pgmln_model *m, const double *raw, double *out)
{
	vector_from_link(m, raw, out);
	if (m->calib && m->C == 2)
	{
		double		q = calibrate(m, out[1]);

		out[0] = 1.0 - q;
		out[1] = q;
	}
	else if (m->task == PGMLN_TASK_REGRESSION && (m->out_transform || m->n_scale))
		out[0] = output_value(m, out[0]);
}

static void
vector_from_link(const pgmln_model *m, const double *raw, double *out)
{
	uint32_t K = m->K;

	if (m->task == PGMLN_TASK_CLASSIFICATION && K == 1)
	{
		double p = sigmoid(m->link_param * raw[0]);

		out[0] = 1.0 - p;
		out[1] = p;
		return;
	}
	switch (m->link)
	{
		case PGMLN_LINK_SIGMOID:
			for (uint32_t k = 0; k < K; k++)
				out[k] = sigmoid(m->link_param * raw[k]);
			break;
		case PGMLN_LINK_EXP:
			for (uint32_t k = 0; k < K; k++)
				out[k] = exp(raw[k]);
			break;
		case PGMLN_LINK_SOFTMAX:
			{
				double mx = raw[0], sum = 0.0;

				for (uint32_t k = 1; k < K; k++)
					if (raw[k] > mx)
						mx = raw[k];
				for (uint32_t k = 0; k < K; k++)
				{
					out[k] = exp(raw[k] - mx);
					sum += out[k];
				}
				for (uint32_t k = 0; k < K; k++)
					out[k] /= sum;
				break;
			}
		case PGMLN_LINK_OVR:
			{
				double sum = 0.0;

				for (uint32_t k = 0; k < K; k++)
				{
					out[k] = sigmoid(raw[k]);
					sum += out[k];
				}
				for (uint32_t k = 0; k < K; k++)
					out[k] = sum > 0 ? out[k] / sum : 1.0 / K;
				break;
			}
		default:
			for (uint32_t k = 0; k < K; k++)
				out[k] = raw[k];
	}
}

double
pgmln_predict_row(const pgmln_model *m, const float *x)
{
	raw_scores(m, x, NULL, m->acc);
	return scalar_from_raw(m, m->acc);
}

void
pgmln_predict_rows(const pgmln_model *m, const float *x, size_t n, double *out)
{
	for (size_t i = 0; i < n; i++)
		out[i] = pgmln_predict_row(m, x + i * m->F);
}

void
pgmln_outputs_row(const pgmln_model *m, const float *x, double *out)
{
	raw_scores(m, x, NULL, m->acc);
	vector_from_raw(m, m->acc, out);
}

void
pgmln_outputs_rows(const pgmln_model *m, const float *x, size_t n, double *out)
{
	size_t w = (size_t) pgmln_vector_width(m);

	if (w == 0)
		return;
	for (size_t i = 0; i < n; i++)
		pgmln_outputs_row(m, x + i * m->F, out + i * w);
}

/* ---------- row form ---------- */

/*
 * raw_linear of the row pgmln_row_encode_used prepared (lin_sparse): the columns in
 * order, a text column's non-zero features from its list, the others' from x.  The same
 * features in the same order as raw_linear of the whole row, so the same sums to
 * the bit, for O(non-zero features x classes) instead of O(width x classes).
 */
static void
raw_linear_used(const pgmln_model *m, const double *x, double *acc)
{
	for (uint32_t k = 0; k < m->K; k++)
		acc[k] = 0.0;
	for (uint32_t c = 0; c < m->n_rowcols; c++)
	{
		const rowcol *rc = &m->rowcols[c];

		if (rc->sparse)
		{
			const uint32_t *idx = m->lin_idx + rc->offset;
			const double *val = m->lin_val + rc->offset;

			for (uint32_t i = 0; i < m->lin_nnz[c]; i++)
				if (val[i] != 0.0)
					add_feature(m, idx[i], val[i], acc);
		}
		else
			for (uint32_t j = rc->offset; j < rc->offset + rc->width; j++)
				if (x[j] != 0.0)
					add_feature(m, j, x[j], acc);
	}
	for (uint32_t k = 0; k < m->K; k++)
		acc[k] += m->base[k];
}

double
pgmln_predict_row_f64(const pgmln_model *m, const double *x)
{
	raw_scores(m, NULL, x, m->acc);
	return scalar_from_raw(m, m->acc);
}

void
pgmln_outputs_row_f64(const pgmln_model *m, const double *x, double *out)
{
	raw_scores(m, NULL, x, m->acc);
	vector_from_raw(m, m->acc, out);
}

/* ---------- input rules ---------- */

int
pgmln_has_input_rules(const pgmln_model *m)
{
	return m->rules;
}

/*
 * What the input rules say about feature j's value v (a double: float32 rows
 * are widened exactly): PGMLN_SCORED, or why the C scorer leaves the row to
 * the Python path.  NaN the preprocessing prefix imputes is a value.  Trees
 * read float32, where a double beyond its range is an infinity (so do the
 * scikit-learn trees); linear models read doubles.
 */
static int
judge(const pgmln_model *m, uint32_t j, double v)
{
	if (isnan(v))
	{
		if (m->has_pre && !isnan(m->impute[j]))
			return PGMLN_SCORED;
		return !m->rules ? PGMLN_UNDECIDED : m->refuse_nan ? PGMLN_REFUSED_NAN : PGMLN_SCORED;
	}
	if (m->kind == PGMLN_KIND_LINEAR ? !isinf(v) : fabs(v) <= FLT_MAX)
		return PGMLN_SCORED;
	return !m->rules ? PGMLN_UNDECIDED : m->refuse_inf ? PGMLN_REFUSED_INF : PGMLN_SCORED;
}

/* the first feature the rules do not let the C scorer answer (slow path), of a
 * float32 row (xf) or a double row (xd), the other NULL */
static int
judge_row(const pgmln_model *m, const float *xf, const double *xd, int *feature)
{
	for (uint32_t j = 0; j < m->F; j++)
	{
		int st = judge(m, j, xf != NULL ? (double) xf[j] : xd[j]);

		if (st != PGMLN_SCORED)
		{
			*feature = (int) j;
			return st;
		}
	}
	return PGMLN_SCORED;
}

/* any NaN or infinity in a float32 row: one OR per feature, no branch */
static inline int
row_has_special(const pgmln_model *m, const float *x)
{
	uint32_t special = 0;

	for (uint32_t j = 0; j < m->F; j++)
	{
		uint32_t bits;

		memcpy(&bits, &x[j], sizeof bits);
		special |= (~bits & 0x7F800000u) == 0; /* exponent all ones */
	}
	return special != 0;
}

static inline int
scores_finite(const pgmln_model *m)
{
	int finite = 1;

	for (uint32_t k = 0; k < m->K; k++)
		finite &= isfinite(m->acc[k]) != 0;
	return finite;
}

/* raw scores of a float32 row into m->acc, or the reason not to score it */
static inline int
checked_scores(const pgmln_model *m, const float *x, int *feature)
{
	int st;

	if (m->check == CHECK_SCAN && row_has_special(m, x) &&
		(st = judge_row(m, x, NULL, feature)) != PGMLN_SCORED)
		return st;
	raw_scores(m, x, NULL, m->acc);
	/* linear: a NaN or infinity makes the scores NaN or infinite (finite coefficients) */
	if (m->check == CHECK_SCORES && !scores_finite(m) &&
		(st = judge_row(m, x, NULL, feature)) != PGMLN_SCORED)
		return st;
	return PGMLN_SCORED;
}

int
pgmln_predict_checked(const pgmln_model *m, const float *x, double *out, int *feature)
{
	int st = checked_scores(m, x, feature);

	if (st == PGMLN_SCORED)
		*out = scalar_from_raw(m, m->acc);
	return st;
}

int
pgmln_outputs_checked(const pgmln_model *m, const float *x, double *out, int *feature)
{
	int st = checked_scores(m, x, feature);

	if (st == PGMLN_SCORED)
		vector_from_raw(m, m->acc, out);
	return st;
}

int
pgmln_predict_checked_f64(const pgmln_model *m, const double *x, double *out, int *feature)
{
	if (m->check != CHECK_NONE)
	{
		int special = 0;

		for (uint32_t j = 0; j < m->F; j++)
			special |= !(fabs(x[j]) <= FLT_MAX);
		if (special)
		{
			int st = judge_row(m, NULL, x, feature);

			if (st != PGMLN_SCORED)
				return st;
		}
	}
	*out = pgmln_predict_row_f64(m, x);
	return PGMLN_SCORED;
}

int
pgmln_predict_used_f64(const pgmln_model *m, const double *x, double *out, int *feature)
{
	if (!m->lin_sparse)
		return pgmln_predict_checked_f64(m, x, out, feature);
	if (m->check != CHECK_NONE)
	{
		int			special = 0;

		/* a text encoding is never NaN nor infinite: the other columns' features */
		for (uint32_t c = 0; c < m->n_rowcols; c++)
		{
			const rowcol *rc = &m->rowcols[c];

			for (uint32_t j = rc->offset; !rc->sparse && j < rc->offset + rc->width; j++)
				special |= !(fabs(x[j]) <= FLT_MAX);
		}
		if (special)
		{
			/* x's text features are the zeros it started with: judged as scored */
			int			st = judge_row(m, NULL, x, feature);

			if (st != PGMLN_SCORED)
				return st;
		}
	}
	raw_linear_used(m, x, m->acc);
	*out = scalar_from_raw(m, m->acc);
	return PGMLN_SCORED;
}

int
pgmln_has_row(const pgmln_model *m)
{
	return m->n_rowcols > 0;
}

int
pgmln_row_columns(const pgmln_model *m)
{
	return (int) m->n_rowcols;
}

const char *
pgmln_row_name(const pgmln_model *m, int col)
{
	return m->rowcols[col].name;
}

int
pgmln_row_kind(const pgmln_model *m, int col)
{
	return (int) m->rowcols[col].kind;
}

int
pgmln_row_is_array(const pgmln_model *m, int col)
{
	return m->rowcols[col].is_array;
}

int
pgmln_row_width(const pgmln_model *m, int col)
{
	return (int) m->rowcols[col].width;
}

/* category index, -2 if unseen (Python's Encoder._codes) */
static int64_t
category_code(const rowcol *rc, const char *s, size_t len)
{
	uint32_t h = fnv1a(s, len) & rc->mask;

	while (rc->slots[h] != 0)
	{
		uint32_t k = rc->slots[h] - 1;

		if (rc->cat_len[k] == len && memcmp(rc->cat[k], s, len) == 0)
			return k;
		h = (h + 1) & rc->mask;
	}
	return -2;
}

/*
 * Encoder.transform of pgml_flow/engine/preprocess.py for one value: encode
 * (NaN = NULL or unseen category), impute (the fitted fill, or reject: Python
 * raises), scale ((x - center) / scale in double).
 */
int
pgmln_row_encode(const pgmln_model *m, int col, const pgmln_value *v, double *x)
{
	const rowcol *rc = &m->rowcols[col];
	double *out = x + rc->offset;
	uint32_t W = rc->width;
	int any_nan = 0;

	if (rc->encode >= PGMLN_ENC_MULTI_HOT)
		pgmln_text_encode(&rc->text, v, out, m->rtext); /* text.c: never NaN */
	else if (rc->kind == PGMLN_COL_TEXT)
	{
		/*
		 * NULL is the category "__NULL__" where the train rows made it one (Python's
		 * NULL_CATEGORY), else missing (-1); an unseen category without an impute
		 * rule is an error the Python path raises (Encoder._encode).
		 */
		int64_t code = v->isnull ? category_code(rc, "__NULL__", 8)
			: category_code(rc, v->str, v->len);

		if (v->isnull && code < 0)
			code = -1;
		if (code == -2 && !rc->has_fill)
			return PGMLN_ROW_REJECT;
		if (rc->encode == PGMLN_ENC_ONE_HOT)
		{
			int all_nan = code < 0;

			for (uint32_t j = 0; j < W; j++)
				out[j] = all_nan ? NAN : 0.0;
			if (code >= 0)
				out[code] = 1.0;
		}
		else if (rc->encode == PGMLN_ENC_TARGET)
			out[0] = code >= 0 ? rc->tmeans[code] : NAN;
		else
			out[0] = code >= 0 ? (double) code : NAN;
	}
	else if (!rc->is_array)
		out[0] = v->isnull ? NAN : v->num;
	else if (v->isnull)
		for (uint32_t j = 0; j < W; j++)
			out[j] = NAN;
	else
	{
		if (v->n != W)
			return PGMLN_ROW_REJECT; /* Python: "array column ... has a row of length" */
		memcpy(out, v->arr, sizeof(double) * W);
	}
	for (uint32_t j = 0; j < W; j++)
		any_nan |= isnan(out[j]);
	if (any_nan)
	{
		if (!rc->has_fill)
			return PGMLN_ROW_REJECT; /* Python: "column ... contains NULL values" */
		for (uint32_t j = 0; j < W; j++)
			if (isnan(out[j]))
				out[j] = rc->fill[j];
	}
	for (uint32_t j = 0; j < W; j++)
		out[j] = (out[j] - rc->center[j]) / rc->scale[j];
	return PGMLN_ROW_OK;
}

/*
 * pgmln_row_encode for a caller that only scores x (the server): a text encoding
 * without centering or scaling writes the features the model reads and those the
 * value touches (text.c), not its whole width, and leaves its other features as they
 * were (finite: a text encoding never gives NaN).  x must start finite (zeros).  A
 * linear model without a prefix (lin_sparse) gets the list of the text's non-zero
 * features instead and x is not written: pgmln_predict_used_f64 reads them from there.
 */
int
pgmln_row_encode_used(const pgmln_model *m, int col, const pgmln_value *v, double *x)
{
	const rowcol *rc = &m->rowcols[col];

	if (!rc->sparse)
		return pgmln_row_encode(m, col, v, x);
	if (m->lin_sparse)
	{
		/* the non-zero features only, for pgmln_predict_used_f64; x is not written */
		m->lin_nnz[col] = pgmln_text_encode_sparse(&rc->text, v, m->rtext, &m->tsp,
												   rc->offset, m->lin_idx + rc->offset,
												   m->lin_val + rc->offset);
		return PGMLN_ROW_OK;
	}
	/* the used features of this column are used[ulo .. uhi), offset in x */
	pgmln_text_encode_used(&rc->text, v, x + rc->offset, m->rtext, &m->tsp,
						   m->used + rc->ulo, rc->uhi - rc->ulo, rc->offset);
	return PGMLN_ROW_OK;
}

int
pgmln_row_float32_ok(const pgmln_model *m, int col)
{
	const rowcol *rc = &m->rowcols[col];

	if (m->kind == PGMLN_KIND_LINEAR || m->snap_zero || m->has_pre || rc->kind == PGMLN_COL_TEXT)
		return 0;
	for (uint32_t j = 0; j < rc->width; j++)
		if (rc->center[j] != 0.0 || rc->scale[j] != 1.0)
			return 0;
	return 1;
}
