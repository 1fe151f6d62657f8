/* classify.c - the top-5 classes of one image, printed as `beit predict` prints
 * them, through libbeit's public API (include/beit.h, docs/c-api.md):
 *   cc classify.c $(pkg-config --cflags --libs beit) -o classify
 *   ./classify CHECKPOINT IMAGE
 * CHECKPOINT: a beit.c, timm or unilm safetensors file, or a Hugging Face folder. */
#include <beit.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: classify CHECKPOINT IMAGE\n");
    return 2;
  }
  beit_net *net;
  if (beit_net_open(&net, argv[1]) != BEIT_OK) {
    fprintf(stderr, "classify: %s\n", beit_last_error());
    return 1;
  }
  float *image = malloc(beit_net_image_floats(net) * sizeof(float));
  beit_class_prob top[5];
  int k = BEIT_ERR;
  if (!image) fprintf(stderr, "classify: out of memory\n");
  else if (beit_net_prepare_file(net, argv[2], image) != BEIT_OK || (k = beit_classify(net, image, 1, 5, top)) < 0)
    fprintf(stderr, "classify: %s\n", beit_last_error());
  else printf("%s\n", argv[2]);
  for (int r = 0; r < k; r++) printf("  %6.2f%%  %s\n", 100 * top[r].prob, top[r].name);
  free(image);
  beit_net_close(net);
  return k < 0;
}
