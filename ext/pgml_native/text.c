/*
 * text.c -- tokenizer, vocabulary lookup, tf-idf and hashing for the row form.
 *
 * Mirrors pgml_flow/engine/text.py (its docstring defines a token); the
 * native parity tests compare the two on punctuation, case, digits, accents,
 * emoji, CJK, empty, NULL and very long texts.  Work is streaming: a text of
 * any length is read once, keeping only the spans of the last PGMLN_MAX_NGRAM
 * tokens; an n-gram longer than the longest vocabulary term cannot be in the
 * vocabulary and is not assembled.  Lower-casing keeps every code point's
 * UTF-8 length, so a token's lower-cased bytes are as long as its source.
 */
#include "text.h"

#include <math.h>
#include <string.h>

#define NOT_A_CP 0xFFFFFFFFu	/* an invalid UTF-8 byte: a separator */

uint32_t
pgmln_text_fnv1a(const char *p, size_t len)
{
	uint32_t	h = 2166136261u;

	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char) p[i]) * 16777619u;
	return h;
}

/* the code point at s[*i] (UTF-8), advancing *i; NOT_A_CP for an invalid byte */
static inline uint32_t
next_cp(const unsigned char *s, size_t n, size_t *i)
{
	unsigned char c = s[*i];
	uint32_t	cp;
	size_t		len;

	if (c < 0x80)
	{
		(*i)++;
		return c;
	}
	if (c >= 0xC2 && c <= 0xDF)
		len = 2, cp = c & 0x1Fu;
	else if (c >= 0xE0 && c <= 0xEF)
		len = 3, cp = c & 0x0Fu;
	else if (c >= 0xF0 && c <= 0xF4)
		len = 4, cp = c & 0x07u;
	else
	{
		(*i)++;
		return NOT_A_CP;
	}
	if (*i + len > n)
	{
		(*i)++;
		return NOT_A_CP;
	}
	for (size_t k = 1; k < len; k++)
	{
		unsigned char cc = s[*i + k];

		if ((cc & 0xC0) != 0x80)
		{
			(*i)++;
			return NOT_A_CP;
		}
		cp = (cp << 6) | (cc & 0x3Fu);
	}
	*i += len;
	return cp;
}

/* text.py's _WORD_CHARS */
static inline int
is_word(uint32_t cp)
{
	if (cp < 0x80)
		return (cp >= '0' && cp <= '9') || ((cp | 0x20u) >= 'a' && (cp | 0x20u) <= 'z');
	if (cp == NOT_A_CP || cp <= 0xBF || cp == 0xD7 || cp == 0xF7)
		return 0;
	if ((cp >= 0x2000 && cp <= 0x2BFF) || (cp >= 0x3000 && cp <= 0x303F) ||
		(cp >= 0xFE00 && cp <= 0xFE0F) || cp == 0xFEFF || (cp >= 0xFFF0 && cp <= 0xFFFF) ||
		(cp >= 0x1F000 && cp <= 0x1FAFF) || (cp >= 0xE0000 && cp <= 0xE007F))
		return 0;
	return cp <= 0x10FFFF;
}

/* text.py's _lower_table */
static inline uint32_t
lower_cp(uint32_t cp)
{
	if (cp < 0x80)
		return (cp >= 'A' && cp <= 'Z') ? cp + 32 : cp;
	if (cp >= 0xC0 && cp <= 0xDE && cp != 0xD7)
		return cp + 32;
	if (cp >= 0x100 && cp <= 0x17E)
	{
		int			even = (cp % 2) == 0;

		if (((cp <= 0x12F || (cp >= 0x132 && cp <= 0x137) || (cp >= 0x14A && cp <= 0x177)) &&
			 even) ||
			(((cp >= 0x139 && cp <= 0x148) || cp >= 0x179) && !even))
			return cp + 1;
		return cp == 0x178 ? 0xFF : cp;
	}
	if ((cp >= 0x391 && cp <= 0x3AB && cp != 0x3A2) || (cp >= 0x410 && cp <= 0x42F))
		return cp + 32;
	if (cp >= 0x400 && cp <= 0x40F)
		return cp + 80;
	return cp;
}

static inline size_t
put_cp(unsigned char *d, uint32_t cp)
{
	if (cp < 0x80)
	{
		d[0] = (unsigned char) cp;
		return 1;
	}
	if (cp < 0x800)
	{
		d[0] = (unsigned char) (0xC0 | (cp >> 6));
		d[1] = (unsigned char) (0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000)
	{
		d[0] = (unsigned char) (0xE0 | (cp >> 12));
		d[1] = (unsigned char) (0x80 | ((cp >> 6) & 0x3F));
		d[2] = (unsigned char) (0x80 | (cp & 0x3F));
		return 3;
	}
	d[0] = (unsigned char) (0xF0 | (cp >> 18));
	d[1] = (unsigned char) (0x80 | ((cp >> 12) & 0x3F));
	d[2] = (unsigned char) (0x80 | ((cp >> 6) & 0x3F));
	d[3] = (unsigned char) (0x80 | (cp & 0x3F));
	return 4;
}

typedef struct
{
	size_t		start, end;		/* byte span in the source */
} span;

/* per byte: 1 an ASCII word character, 0 an ASCII separator, 2 a byte of a UTF-8
 * sequence (next_cp and is_word decide) */
static const unsigned char byte_class[256] = {
	['0' ... '9'] = 1, ['A' ... 'Z'] = 1, ['a' ... 'z'] = 1, [0x80 ... 0xFF] = 2,
};

#if defined(__GNUC__)
#define TEXT_INLINE static inline __attribute__((always_inline))
#else
#define TEXT_INLINE static inline
#endif

/*
 * the next token (a run of 2+ word code points) from *pos; 0 at the end.  Inlined into
 * each loop that reads tokens, the ASCII word bytes of a run read by a loop of one table
 * load each.  (The serving path reads an ASCII text with next_ascii_token instead, eight
 * bytes at a time.)
 */
TEXT_INLINE int
next_token(const unsigned char *s, size_t n, size_t *pos, span *tok)
{
	size_t		p = *pos;

	while (p < n)
	{
		size_t		start = p,
					end,
					count = 1;
		unsigned	cls = byte_class[s[p]];

		if (cls == 0)
		{
			p++;
			continue;
		}
		if (cls == 1)
			p++;
		else if (!is_word(next_cp(s, n, &p)))
			continue;
		end = p;
		while (p < n)
		{
			size_t		q = p;

			while (q < n && byte_class[s[q]] == 1)
				q++;
			count += q - p;
			end = p = q;
			if (p >= n)
				break;
			if (byte_class[s[p]] == 0)
			{
				p++;			/* the separator */
				break;
			}
			if (!is_word(next_cp(s, n, &p)))
				break;
			count++;
			end = p;
		}
		/* the loop stopped after a separator (or at the end): nothing to give back */
		if (count >= 2)
		{
			tok->start = start;
			tok->end = end;
			*pos = p;
			return 1;
		}
	}
	*pos = p;
	return 0;
}

/* a token's lower-cased bytes into d (as many as the source span) */
static size_t
lower_into(const unsigned char *s, span t, unsigned char *d)
{
	size_t		i = t.start,
				o = 0;

	while (i < t.end)
		o += put_cp(d + o, lower_cp(next_cp(s, t.end, &i)));
	return o;
}

size_t
pgmln_tokens(const char *str, size_t len, char *out, size_t cap)
{
	const unsigned char *s = (const unsigned char *) str;
	size_t		pos = 0,
				need = 0;
	span		t;
	unsigned char buf[4];

	while (next_token(s, len, &pos, &t))
	{
		size_t		i = t.start;

		while (i < t.end)
		{
			size_t		k = put_cp(buf, lower_cp(next_cp(s, t.end, &i)));

			for (size_t b = 0; b < k; b++, need++)
				if (need < cap)
					out[need] = (char) buf[b];
		}
		if (need < cap)
			out[need] = '\n';
		need++;
	}
	return need;
}

/* ---------- MurmurHash3 x86_32, streaming ---------- */

typedef struct
{
	uint32_t	h;
	uint32_t	carry;			/* up to 3 pending bytes, little-endian */
	uint32_t	ncarry;
	uint32_t	total;
} murmur;

static inline uint32_t
rotl32(uint32_t x, int r)
{
	return (x << r) | (x >> (32 - r));
}

static inline void
mm_block(murmur *m, uint32_t k)
{
	k *= 0xcc9e2d51u;
	k = rotl32(k, 15);
	k *= 0x1b873593u;
	m->h ^= k;
	m->h = rotl32(m->h, 13);
	m->h = m->h * 5 + 0xe6546b64u;
}

static inline void
mm_byte(murmur *m, unsigned char b)
{
	m->carry |= (uint32_t) b << (8 * m->ncarry);
	m->total++;
	if (++m->ncarry == 4)
	{
		mm_block(m, m->carry);
		m->carry = 0;
		m->ncarry = 0;
	}
}

static inline int32_t
mm_final(murmur *m)
{
	uint32_t	h = m->h;

	if (m->ncarry)
	{
		uint32_t	k = m->carry;

		k *= 0xcc9e2d51u;
		k = rotl32(k, 15);
		k *= 0x1b873593u;
		h ^= k;
	}
	h ^= m->total;
	h ^= h >> 16;
	h *= 0x85ebca6bu;
	h ^= h >> 13;
	h *= 0xc2b2ae35u;
	h ^= h >> 16;
	return (int32_t) h;
}

int32_t
pgmln_murmur3(const void *data, size_t len)
{
	murmur		m = {0, 0, 0, 0};

	for (size_t i = 0; i < len; i++)
		mm_byte(&m, ((const unsigned char *) data)[i]);
	return mm_final(&m);
}

/* ---------- encodings ---------- */

static int64_t
vocab_code(const pgmln_text *t, const char *s, size_t len)
{
	uint32_t	h = pgmln_text_fnv1a(s, len) & t->mask;

	while (t->slots[h] != 0)
	{
		uint32_t	k = t->slots[h] - 1;

		if (t->cat_len[k] == len && memcmp(t->cat[k], s, len) == 0)
			return k;
		h = (h + 1) & t->mask;
	}
	return -1;
}

/*
 * The column the n-gram of the last n tokens (ring[k - n + 1 .. k]) counts in, into *j,
 * and what it adds there, into *delta (hashing: -1 for a negative hash with
 * alternate_sign); 0 when it counts nowhere (not in the vocabulary).
 */
static int
ngram_column(const pgmln_text *t, const unsigned char *s, const span *ring, size_t k,
			 uint32_t n, char *scratch, uint32_t *j, double *delta)
{
	if (t->encode == PGMLN_ENC_HASHING)
	{
		murmur		m = {0, 0, 0, 0};
		unsigned char buf[4];
		int32_t		h;

		for (uint32_t g = 0; g < n; g++)
		{
			span		tok = ring[(k - n + 1 + g) % PGMLN_MAX_NGRAM];
			size_t		i = tok.start;

			if (g > 0)
				mm_byte(&m, ' ');
			while (i < tok.end)
			{
				size_t		b = put_cp(buf, lower_cp(next_cp(s, tok.end, &i)));

				for (size_t q = 0; q < b; q++)
					mm_byte(&m, buf[q]);
			}
		}
		h = mm_final(&m);
		*j = (uint32_t) ((h < 0 ? -(int64_t) h : (int64_t) h) % t->width);
		*delta = ((t->flags & PGMLN_TEXT_ALTERNATE_SIGN) && h < 0) ? -1.0 : 1.0;
		return 1;
	}
	{
		size_t		len = n - 1;
		size_t		o = 0;
		int64_t		code;

		for (uint32_t g = 0; g < n; g++)
		{
			span		tok = ring[(k - n + 1 + g) % PGMLN_MAX_NGRAM];

			len += tok.end - tok.start;
		}
		if (len > t->maxlen)
			return 0;			/* longer than every vocabulary term */
		for (uint32_t g = 0; g < n; g++)
		{
			if (g > 0)
				scratch[o++] = ' ';
			o += lower_into(s, ring[(k - n + 1 + g) % PGMLN_MAX_NGRAM],
							(unsigned char *) scratch + o);
		}
		code = vocab_code(t, scratch, o);
		if (code < 0)
			return 0;
		*j = (uint32_t) code;
		*delta = 1.0;
		return 1;
	}
}

/* column j is touched by this call: listed once */
static inline void
touch(const pgmln_text_scratch *sp, uint32_t j, uint32_t *ntouched)
{
	uint64_t	bit = (uint64_t) 1 << (j & 63);

	if (!(sp->bits[j >> 6] & bit))
	{
		sp->bits[j >> 6] |= bit;
		sp->touched[(*ntouched)++] = j;
	}
}

/*
 * Each n-gram of v's text counted into out (words: 1.0), in the text's order, a ring of
 * the last PGMLN_MAX_NGRAM tokens' spans; with sp (the serving path, out its count)
 * each column counted is also listed in sp->touched, and their number returned.
 * Inlined into both callers, where sp is a constant (NULL for pgmln_text_encode).
 */
TEXT_INLINE uint32_t
count_ngrams(const pgmln_text *t, const pgmln_value *v, char *scratch, double *out,
			 const pgmln_text_scratch *sp)
{
	const unsigned char *s = (const unsigned char *) v->str;
	span		ring[PGMLN_MAX_NGRAM];
	size_t		pos = 0,
				k = 0;
	span		tok;
	uint32_t	ntouched = 0;

	for (; next_token(s, v->len, &pos, &tok); k++)
	{
		ring[k % PGMLN_MAX_NGRAM] = tok;
		for (uint32_t n = t->lo; n <= t->hi && n <= k + 1; n++)
		{
			uint32_t	j;
			double		delta;

			if (!ngram_column(t, s, ring, k, n, scratch, &j, &delta))
				continue;
			if (sp != NULL)
				touch(sp, j, &ntouched);
			if (t->encode == PGMLN_ENC_WORDS)
				out[j] = 1.0;
			else
				out[j] += delta;
		}
	}
	return ntouched;
}

static inline uint32_t multi_hot(const pgmln_text *t, const pgmln_value *v, double *out,
								 const pgmln_text_scratch *sp);

void
pgmln_text_encode(const pgmln_text *t, const pgmln_value *v, double *out, char *scratch)
{
	uint32_t	W = t->width;

	for (uint32_t j = 0; j < W; j++)
		out[j] = 0.0;
	if (v->isnull)
		return;
	if (t->encode == PGMLN_ENC_MULTI_HOT)
	{
		multi_hot(t, v, out, NULL);
		return;
	}
	count_ngrams(t, v, scratch, out, NULL);
	if (t->encode == PGMLN_ENC_WORDS)
		return;
	if (t->encode == PGMLN_ENC_TFIDF)
		for (uint32_t j = 0; j < W; j++)
			if (out[j] != 0.0)
				out[j] = ((t->flags & PGMLN_TEXT_SUBLINEAR_TF) ? 1.0 + log(out[j]) : out[j]) *
					t->idf[j];
	{
		double		total = 0.0;

		for (uint32_t j = 0; j < W; j++)
			total += out[j] * out[j];
		if (total != 0.0)
		{
			double		norm = sqrt(total);

			for (uint32_t j = 0; j < W; j++)
				out[j] /= norm;
		}
	}
}

/* ---------- the touched columns only (the serving path) ---------- */

/*
 * The serving path's vocabulary lookup.  Most n-grams of a text (nearly every word
 * pair) are not in the vocabulary, and vocab_code pays for a miss with the byte-wise
 * FNV-1a and, at half load, about two probes that each read a term's length from
 * elsewhere.  This index hashes eight bytes at a time and keeps 16 bits of the hash in
 * the slot (4 bytes: a 2,000-term vocabulary's index is 16 kB, which stays in L1): a
 * miss is mostly one or two probes of one array.
 */
static inline uint64_t
term_hash(const char *p, size_t len)
{
	uint64_t	h = 0x9E3779B97F4A7C15ull ^ (uint64_t) len;

	while (len >= 8)
	{
		uint64_t	w;

		memcpy(&w, p, 8);
		h = (h ^ w) * 0xff51afd7ed558ccdull;
		h ^= h >> 32;
		p += 8;
		len -= 8;
	}
	if (len > 0)
	{
		/* the last 1-7 bytes as two loads that may overlap (with len mixed in above,
		 * the word still tells such keys apart): no byte-wise copy to memory that the
		 * word load would wait for */
		uint64_t	w;

		if (len >= 4)
		{
			uint32_t	a,
						b;

			memcpy(&a, p, 4);
			memcpy(&b, p + len - 4, 4);
			w = (uint64_t) a | (uint64_t) b << 32;
		}
		else
			w = (uint64_t) (unsigned char) p[0] | (uint64_t) (unsigned char) p[len / 2] << 8 |
				(uint64_t) (unsigned char) p[len - 1] << 16;
		h = (h ^ w) * 0xc4ceb9fe1a85ec53ull;
		h ^= h >> 29;
	}
	h *= 0x9E3779B97F4A7C15ull;
	return h ^ (h >> 31);
}

#define INDEX_MAX_TERMS 65535u

uint32_t
pgmln_text_index_slots(uint32_t ncat)
{
	uint32_t	n = 8;

	if (ncat >= INDEX_MAX_TERMS)
		return 0;
	/*
	 * At most an eighth full, up to 2^17 slots (512 kB): nearly every word pair of a text
	 * is not in the vocabulary, and a miss probes until an empty slot (1.1 probes at an
	 * eighth, 2.5 at half); the 2,000-term vocabulary's misses cost 12 % of its
	 * encoding at half.  A larger vocabulary stays at most half full.
	 */
	while (n < 2 * ncat || (n < 8 * ncat && n < (1u << 17)))
		n <<= 1;
	return n;
}

/*
 * An n-gram's hash for the index of a token vocabulary (words, tfidf): its tokens'
 * term_hash mixed in order, so that a text's n-grams are hashed from its tokens' hashes,
 * each token hashed once, without assembling the n-gram.  A vocabulary term is the
 * n-gram's tokens joined by one space, and is hashed from its space-separated parts (a
 * term no text's tokens can form gets a hash no lookup makes, as it should).
 */
static inline uint64_t
gram_mix(uint64_t h, uint64_t x)
{
	h = (h ^ (h >> 31)) * 0x9E3779B97F4A7C15ull + x;
	return h ^ (h >> 29);
}

static uint64_t
gram_hash_of_term(const char *s, size_t len)
{
	uint64_t	h = 0;
	size_t		start = 0;

	for (size_t i = 0; i <= len; i++)
		if (i == len || s[i] == ' ')
		{
			uint64_t	x = term_hash(s + start, i - start);

			h = start == 0 ? x : gram_mix(h, x);
			start = i + 1;
		}
	return h;
}

/* the slot of the term (s, len) of hash h in the index: where it is, or the empty slot
 * it goes to */
static inline uint32_t
index_slot(const pgmln_text *t, uint64_t h, const char *s, size_t len, uint32_t *tag)
{
	uint32_t	i = (uint32_t) h & t->imask;

	*tag = (uint32_t) (h >> 48) << 16;
	for (;; i = (i + 1) & t->imask)
	{
		uint32_t	e = t->index[i];
		uint32_t	k = (e & 0xFFFFu) - 1;

		if (e == 0 || ((e & 0xFFFF0000u) == *tag && t->cat_len[k] == len &&
					   memcmp(t->cat[k], s, len) == 0))
			return i;
	}
}

void
pgmln_text_index(pgmln_text *t, uint32_t *tab)
{
	uint32_t	slots = pgmln_text_index_slots(t->ncat);

	t->index = slots ? tab : NULL;
	t->imask = slots - 1;
	for (uint32_t i = 0; i < slots; i++)
		tab[i] = 0;
	/* as model.c's table: a repeated term keeps the last index */
	for (uint32_t k = 0; k < t->ncat && slots; k++)
	{
		const char *term = t->cat[k];
		size_t		len = t->cat_len[k];
		uint32_t	tag;
		uint32_t	i = index_slot(t, t->encode == PGMLN_ENC_MULTI_HOT ? term_hash(term, len)
								   : gram_hash_of_term(term, len), term, len, &tag);

		tab[i] = tag | (k + 1);
	}
}

/* vocab_code through the index (multi_hot: whole strings) */
static inline int64_t
indexed_code(const pgmln_text *t, const char *s, size_t len)
{
	uint32_t	tag,
				e;

	if (t->index == NULL)
		return vocab_code(t, s, len);
	e = t->index[index_slot(t, term_hash(s, len), s, len, &tag)];
	return e == 0 ? -1 : (int64_t) ((e & 0xFFFFu) - 1);
}

/* multi_hot's 1.0 at each item in the vocabulary (out: zeroed by the caller); with sp
 * (encode_touched: out its count) each column set is also listed in sp->touched, and
 * their number returned (count_ngrams' convention) */
static inline uint32_t
multi_hot(const pgmln_text *t, const pgmln_value *v, double *out, const pgmln_text_scratch *sp)
{
	uint32_t	ntouched = 0;

	for (size_t i = 0; i < v->nitems; i++)
	{
		int64_t		code;

		if (v->items[i] == NULL)
			continue;
		code = indexed_code(t, v->items[i], v->item_lens[i]);
		if (code < 0)
			continue;
		if (sp != NULL)
			touch(sp, (uint32_t) code, &ntouched);
		out[code] = 1.0;
	}
	return ntouched;
}

/*
 * The vocabulary index of the n-gram of the last n tokens, whose lower-cased bytes are in
 * the ring's slots (lens: their lengths; len: the n-gram's, spaces included) and whose
 * hash is h (gram_mix of the tokens' hashes); -1 if not in the vocabulary.  A term
 * matches when it is those bytes joined by single spaces, as the n-gram vocab_code
 * looks up.
 */
/* memcmp(a, b, len) == 0 for the short strings of a vocabulary, inline: 8-byte loads,
 * the last one overlapping (a call to memcmp cost more than the comparison) */
static inline int
same_bytes(const char *a, const char *b, size_t len)
{
	uint64_t	x,
				y;
	uint32_t	u,
				v;

	if (len >= 8)
	{
		for (size_t i = 0; i + 8 < len; i += 8)
		{
			memcpy(&x, a + i, 8);
			memcpy(&y, b + i, 8);
			if (x != y)
				return 0;
		}
		memcpy(&x, a + len - 8, 8);
		memcpy(&y, b + len - 8, 8);
		return x == y;
	}
	if (len >= 4)
	{
		memcpy(&u, a, 4);
		memcpy(&v, b, 4);
		if (u != v)
			return 0;
		memcpy(&u, a + len - 4, 4);
		memcpy(&v, b + len - 4, 4);
		return u == v;
	}
	for (size_t i = 0; i < len; i++)
		if (a[i] != b[i])
			return 0;
	return 1;
}

static inline int64_t
gram_code(const pgmln_text *t, uint64_t h, const char *lower, size_t slot_len,
		  const size_t *lens, size_t k, uint32_t n, size_t len)
{
	uint32_t	tag = (uint32_t) (h >> 48) << 16;
	const uint32_t *index = t->index;
	uint32_t	imask = t->imask;

	for (uint32_t i = (uint32_t) h & imask;; i = (i + 1) & imask)
	{
		uint32_t	e = index[i];
		uint32_t	c = (e & 0xFFFFu) - 1;
		const char *term;
		uint32_t	g;

		if (e == 0)
			return -1;
		if ((e & 0xFFFF0000u) != tag || t->cat_len[c] != len)
			continue;
		term = t->cat[c];
		for (g = 0; g < n; g++)
		{
			size_t		from = (k - n + 1 + g) % PGMLN_MAX_NGRAM;

			if (g > 0 && *term++ != ' ')
				break;
			if (!same_bytes(term, lower + from * slot_len, lens[from]))
				break;
			term += lens[from];
		}
		if (g == n)
			return c;
	}
}

/* the touched columns in column order, their bits cleared: an insertion sort for a few,
 * else the bitmap read in order (a 64th of the width) */
static void
sort_touched(const pgmln_text_scratch *sp, uint32_t ntouched, uint32_t width)
{
	uint32_t   *a = sp->touched;

	if (ntouched <= 16)
	{
		for (uint32_t i = 1; i < ntouched; i++)
		{
			uint32_t	x = a[i],
						k = i;

			for (; k > 0 && a[k - 1] > x; k--)
				a[k] = a[k - 1];
			a[k] = x;
		}
		for (uint32_t i = 0; i < ntouched; i++)
			sp->bits[a[i] >> 6] = 0;
	}
	else
	{
		uint32_t	n = 0;

		for (uint32_t w = 0; w < (width + 63) / 64; w++)
		{
			uint64_t	b = sp->bits[w];

			sp->bits[w] = 0;
			for (; b; b &= b - 1)
				a[n++] = w * 64 + (uint32_t) __builtin_ctzll(b);
		}
	}
}

/* a token's lower-cased bytes into d: a table for ASCII, lower_into for the rest */
static inline void
lower_token(const unsigned char *s, span t, unsigned char *d)
{
	for (size_t i = t.start; i < t.end; i++)
	{
		unsigned char c = s[i];

		if (c >= 0x80)
		{
			lower_into(s, t, d);
			return;
		}
		d[i - t.start] = (c >= 'A' && c <= 'Z') ? (unsigned char) (c + 32) : c;
	}
}

/*
 * The ASCII path of the serving loop, eight bytes at a time.  Nearly every issue text is
 * ASCII (98.5 % of the Deep-SE descriptions): for such a text a token is a run of 2+ of
 * [0-9A-Za-z], found by masks of eight bytes instead of a test and a branch per byte,
 * and lower-cased eight bytes at a time.  The same tokens, bytes and hashes as
 * next_token and lower_token; a text with any other byte takes those.  No load reads
 * outside the text: the last 1-7 bytes are read one at a time.
 */
#define BYTES_ONES 0x0101010101010101ull
#define BYTES_HIGHS 0x8080808080808080ull

static inline uint64_t
load8(const unsigned char *p)
{
	uint64_t	w;

	memcpy(&w, p, 8);
	return w;
}

/* 0x80 in each byte of x (bytes below 0x80) that is in [lo, hi]: per byte, no carry
 * crosses into the next (x + 0x80 - lo and x + 0x7F - hi stay below 0x100) */
static inline uint64_t
bytes_in(uint64_t x, unsigned lo, unsigned hi)
{
	return (x + BYTES_ONES * (0x80 - lo)) & ~(x + BYTES_ONES * (0x7F - hi)) & BYTES_HIGHS;
}

/* 0x80 in each byte of x (ASCII) that is a word character: a digit or a letter */
static inline uint64_t
word_bytes(uint64_t x)
{
	return bytes_in(x, '0', '9') | bytes_in(x | BYTES_ONES * 0x20, 'a', 'z');
}

static inline int
all_ascii(const unsigned char *s, size_t n)
{
	uint64_t	acc = 0;
	size_t		i = 0;

	for (; i + 8 <= n; i += 8)
		acc |= load8(s + i);
	for (; i < n; i++)
		acc |= s[i];
	return (acc & BYTES_HIGHS) == 0;
}

/* next_token of an ASCII text */
TEXT_INLINE int
next_ascii_token(const unsigned char *s, size_t n, size_t *pos, span *tok)
{
	size_t		p = *pos;

	for (;;)
	{
		size_t		start;

		/* the first word byte */
		for (;;)
		{
			if (p + 8 <= n)
			{
				uint64_t	m = word_bytes(load8(s + p));

				if (m == 0)
				{
					p += 8;
					continue;
				}
				p += (size_t) __builtin_ctzll(m) >> 3;
				break;
			}
			while (p < n && byte_class[s[p]] != 1)
				p++;
			break;
		}
		if (p >= n)
		{
			*pos = p;
			return 0;
		}
		start = p;
		/* the first byte after the run */
		for (;;)
		{
			if (p + 8 <= n)
			{
				uint64_t	m = ~word_bytes(load8(s + p)) & BYTES_HIGHS;

				if (m == 0)
				{
					p += 8;
					continue;
				}
				p += (size_t) __builtin_ctzll(m) >> 3;
				break;
			}
			while (p < n && byte_class[s[p]] == 1)
				p++;
			break;
		}
		if (p - start >= 2)
		{
			tok->start = start;
			tok->end = p;
			*pos = p;			/* at the separator: the next call skips it */
			return 1;
		}
	}
}

/* lower_token of an ASCII token: upper-case letters get 0x20, eight bytes at a time */
static inline void
lower_ascii(const unsigned char *s, span t, unsigned char *d)
{
	size_t		i = t.start;

	for (; i + 8 <= t.end; i += 8)
	{
		uint64_t	w = load8(s + i);

		w |= bytes_in(w, 'A', 'Z') >> 2;
		memcpy(d + (i - t.start), &w, 8);
	}
	for (; i < t.end; i++)
		d[i - t.start] = (s[i] >= 'A' && s[i] <= 'Z') ? (unsigned char) (s[i] + 32) : s[i];
}

/*
 * pgmln_text_encode for a caller that reads only some of the width columns: the
 * columns zero[0 .. nzero) - base get their value (most are 0),
 * and so does every column the text touched; the others are left as they were.  A
 * description has tens of distinct n-grams against a vocabulary of thousands, so this
 * costs the tokens and the touched columns instead of five passes over the width.
 *
 * The values are pgmln_text_encode's to the bit: the counts are accumulated in the same
 * order, the l2 norm sums the squares in column order (the touched columns sorted; an
 * untouched column adds +0.0, which changes no sum) and each value is divided by it.
 *
 * encode_touched is the part both serving forms share: the columns v touches in
 * sp->touched (in column order, except for words and multi_hot) with their values in
 * sp->count; the callers copy them out and clear the scratch.
 */
static uint32_t
encode_touched(const pgmln_text *t, const pgmln_value *v, char *scratch,
			   const pgmln_text_scratch *sp)
{
	uint32_t	ntouched = 0;

	if (t->encode == PGMLN_ENC_MULTI_HOT)
		return multi_hot(t, v, sp->count, sp);
	if (t->encode == PGMLN_ENC_HASHING)
		ntouched = count_ngrams(t, v, scratch, sp->count, sp);
	else
	{
		/*
		 * A vocabulary: each token is lower-cased once, into its slot of the ring, and
		 * hashed once (if it can be part of a term at all: not longer than the longest);
		 * an n-gram's hash mixes its tokens' (gram_code), or, without an index, its
		 * bytes are the slots' joined by spaces (vocab_code).  ngram_column's lookup,
		 * without lower-casing, copying and hashing a token again for every n-gram it
		 * is part of.
		 */
		const unsigned char *s = (const unsigned char *) v->str;
		size_t		slot_len = (size_t) t->maxlen + 1;
		char	   *gram = sp->lower + PGMLN_MAX_NGRAM * slot_len;
		size_t		lens[PGMLN_MAX_NGRAM];
		uint64_t	hashes[PGMLN_MAX_NGRAM];
		size_t		pos = 0,
					k = 0;
		span		tok;
		int			ascii = all_ascii(s, v->len);

		for (; ascii ? next_ascii_token(s, v->len, &pos, &tok)
			 : next_token(s, v->len, &pos, &tok); k++)
		{
			size_t		slot = k % PGMLN_MAX_NGRAM;

			lens[slot] = tok.end - tok.start;
			if (lens[slot] <= t->maxlen)
			{
				if (ascii)
					lower_ascii(s, tok, (unsigned char *) sp->lower + slot * slot_len);
				else
					lower_token(s, tok, (unsigned char *) sp->lower + slot * slot_len);
				hashes[slot] = term_hash(sp->lower + slot * slot_len, lens[slot]);
			}
			for (uint32_t n = t->lo; n <= t->hi && n <= k + 1; n++)
			{
				size_t		len = n - 1;
				int64_t		code;

				for (uint32_t g = 0; g < n; g++)
					len += lens[(k - g) % PGMLN_MAX_NGRAM];
				if (len > t->maxlen)
					continue;	/* longer than every vocabulary term */
				if (t->index)
				{
					uint64_t	h = hashes[(k - n + 1) % PGMLN_MAX_NGRAM];

					for (uint32_t g = 1; g < n; g++)
						h = gram_mix(h, hashes[(k - n + 1 + g) % PGMLN_MAX_NGRAM]);
					code = gram_code(t, h, sp->lower, slot_len, lens, k, n, len);
				}
				else
				{
					size_t		o = 0;

					for (uint32_t g = 0; g < n; g++)
					{
						size_t		from = (k - n + 1 + g) % PGMLN_MAX_NGRAM;

						if (g > 0)
							gram[o++] = ' ';
						memcpy(gram + o, sp->lower + from * slot_len, lens[from]);
						o += lens[from];
					}
					code = vocab_code(t, gram, len);
				}
				if (code < 0)
					continue;
				touch(sp, (uint32_t) code, &ntouched);
				if (t->encode == PGMLN_ENC_WORDS)
					sp->count[code] = 1.0;
				else
					sp->count[code] += 1.0;
			}
		}
	}
	if (t->encode != PGMLN_ENC_WORDS)
	{
		double		total = 0.0;

		sort_touched(sp, ntouched, t->width);
		for (uint32_t u = 0; u < ntouched; u++)
		{
			uint32_t	j = sp->touched[u];
			double		c = sp->count[j];

			/* 1 + log(1) is exactly 1: most terms occur once, and log is a call */
			if (t->encode == PGMLN_ENC_TFIDF && c != 0.0)
				c = ((t->flags & PGMLN_TEXT_SUBLINEAR_TF) && c != 1.0 ? 1.0 + log(c) : c) *
					t->idf[j];
			sp->count[j] = c;
			total += c * c;
		}
		if (total != 0.0)
		{
			double		norm = sqrt(total);

			for (uint32_t u = 0; u < ntouched; u++)
				sp->count[sp->touched[u]] /= norm;
		}
	}
	return ntouched;
}

void
pgmln_text_encode_used(const pgmln_text *t, const pgmln_value *v, double *out,
					   char *scratch, const pgmln_text_scratch *sp, const uint32_t *zero,
					   uint32_t nzero, uint32_t base)
{
	uint32_t	ntouched;

	for (uint32_t u = 0; u < nzero; u++)
		out[zero[u] - base] = 0.0;
	if (v->isnull)
		return;
	if (t->encode == PGMLN_ENC_MULTI_HOT)
	{
		multi_hot(t, v, out, NULL);
		return;
	}
	ntouched = encode_touched(t, v, scratch, sp);
	for (uint32_t u = 0; u < ntouched; u++)
	{
		uint32_t	j = sp->touched[u];

		out[j] = sp->count[j];
		sp->count[j] = 0.0;
		sp->bits[j >> 6] = 0;	/* cleared already unless words */
	}
}

/*
 * The linear scorer's form of the same values (pgmln_row_encode_used of a linear model):
 * the columns the value touches, ascending, as base + column into idx and the value into
 * val, and their count returned; nothing else is written.  The values are
 * pgmln_text_encode's to the bit (the same code computes them); the columns it leaves
 * out are the zeros.  A linear model's cost is then its non-zero features, not the width.
 */
uint32_t
pgmln_text_encode_sparse(const pgmln_text *t, const pgmln_value *v, char *scratch,
						 const pgmln_text_scratch *sp, uint32_t base, uint32_t *idx,
						 double *val)
{
	uint32_t	ntouched;

	if (v->isnull)
		return 0;
	ntouched = encode_touched(t, v, scratch, sp);
	/* tf-idf and hashing sorted theirs for the norm; indicators did not */
	if (t->encode == PGMLN_ENC_MULTI_HOT || t->encode == PGMLN_ENC_WORDS)
		sort_touched(sp, ntouched, t->width);
	for (uint32_t u = 0; u < ntouched; u++)
	{
		uint32_t	j = sp->touched[u];

		idx[u] = base + j;
		val[u] = sp->count[j];
		sp->count[j] = 0.0;
	}
	return ntouched;
}
