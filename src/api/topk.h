/* topk.h - the top classes of one row of logits with their probabilities:
 * what `beit predict` prints and beit_classify (include/beit.h) returns, from
 * one function so the two always agree. */
#ifndef BEIT_API_TOPK_H
#define BEIT_API_TOPK_H

/* The k highest of K logits (1 <= k <= K) in order (a higher logit first, a tie
 * in class order), with their softmax probabilities. BEIT_ERR (message "the
 * logits are not all finite") when any logit is a NaN or infinite: logits_rank
 * and logits_top1 (ops.h) count no class as right then either. */
int beit_logits_topk(const float *logits, int K, int k, int *index, float *prob);

#endif
