/*
 * cuda_runtime.cu: device discovery, the context (one stream), device memory and copies, all
 * checked: every failure becomes a bn_error naming the operation and CUDA's own message, and an
 * out-of-memory error gives the bytes asked for with the device's free and total memory.
 */
#include "kernels/cuda/cuda_common.cuh"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bn_status cuda_error(bn_error *err, cudaError_t e, const char *what) {
    return bn_error_set(err, BN_ERR_DEVICE, "CUDA: %s failed: %s (%s)", what, cudaGetErrorString(e),
                        cudaGetErrorName(e));
}

bn_status bn_cuda_device_info(int device, char *name, size_t name_size, bn_error *err) {
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e == cudaErrorInsufficientDriver || e == cudaErrorNoDevice || (e == cudaSuccess && count == 0)) {
        cudaGetLastError(); /* clear the (non-sticky) error so later calls start clean */
        const char *why = e == cudaErrorInsufficientDriver
                              ? "no NVIDIA driver found, or one older than this build's CUDA runtime"
                          : e == cudaErrorNoDevice ? "the driver finds no GPU"
                                                   : "the driver reports 0 devices";
        return bn_error_set(err, BN_ERR_DEVICE,
                            "no CUDA device available (%s): --device cuda needs an NVIDIA GPU "
                            "(compute capability 8.0 or newer) and its driver; use --device cpu",
                            why);
    }
    if (e != cudaSuccess) return cuda_error(err, e, "cudaGetDeviceCount");
    if (device < 0 || device >= count)
        return bn_error_set(err, BN_ERR_DEVICE, "no CUDA device %d: the driver reports %d (cuda:0 to cuda:%d); use --device cpu or another index",
                            device, count, count - 1);
    cudaDeviceProp prop;
    if ((e = cudaGetDeviceProperties(&prop, device)) != cudaSuccess)
        return cuda_error(err, e, "cudaGetDeviceProperties");
    if (prop.major < 8)
        return bn_error_set(err, BN_ERR_DEVICE,
                            "CUDA device %d (%s) has compute capability %d.%d; this build needs 8.0 or newer",
                            device, prop.name, prop.major, prop.minor);
    if (name && name_size)
        snprintf(name, name_size, "%s (sm_%d%d, %.1f GiB)", prop.name, prop.major, prop.minor,
                 (double)prop.totalGlobalMem / (1024.0 * 1024.0 * 1024.0));
    return BN_OK;
}

bn_status bn_cuda_context_create(int device, bn_cuda_context **out, bn_error *err) {
    *out = NULL;
    bn_status st = bn_cuda_device_info(device, NULL, 0, err);
    if (st != BN_OK) return st;
    cudaError_t e = cudaSetDevice(device);
    if (e != cudaSuccess) return cuda_error(err, e, "cudaSetDevice");
    bn_cuda_context *ctx = (bn_cuda_context *)calloc(1, sizeof *ctx);
    if (!ctx) return bn_error_set(err, BN_ERR_NOMEM, "out of memory for a CUDA context");
    if ((e = cudaStreamCreateWithFlags(&ctx->stream, cudaStreamNonBlocking)) != cudaSuccess) {
        free(ctx);
        return cuda_error(err, e, "cudaStreamCreate");
    }
    ctx->first_error = cudaSuccess;
    *out = ctx;
    return BN_OK;
}

void bn_cuda_context_free(bn_cuda_context *ctx) {
    if (!ctx) return;
    cudaStreamSynchronize(ctx->stream);
    cudaStreamDestroy(ctx->stream);
    free(ctx);
}

void bn_cuda_note_launch(bn_cuda_context *ctx, const char *op) {
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess && ctx->first_error == cudaSuccess) {
        ctx->first_error = e;
        snprintf(ctx->first_error_op, sizeof ctx->first_error_op, "%s", op);
    }
}

bn_status bn_cuda_malloc(void **out, size_t bytes, const char *what, bn_error *err) {
    *out = NULL;
    cudaError_t e = cudaMalloc(out, bytes ? bytes : 1);
    if (e == cudaSuccess) return BN_OK;
    *out = NULL;
    cudaGetLastError();
    if (e == cudaErrorMemoryAllocation) {
        size_t free_bytes = 0, total_bytes = 0;
        cudaMemGetInfo(&free_bytes, &total_bytes);
        cudaGetLastError();
        return bn_error_set(err, BN_ERR_NOMEM,
                            "CUDA: out of device memory for %s: asked for %zu bytes (%.1f MiB), "
                            "%zu of %zu bytes free (%.1f of %.1f MiB)",
                            what, bytes, (double)bytes / 1048576.0, free_bytes, total_bytes,
                            (double)free_bytes / 1048576.0, (double)total_bytes / 1048576.0);
    }
    char op[128];
    snprintf(op, sizeof op, "cudaMalloc of %zu bytes for %s", bytes, what);
    return cuda_error(err, e, op);
}

void bn_cuda_free(void *device_pointer) {
    if (device_pointer) cudaFree(device_pointer);
}

bn_status bn_cuda_upload(bn_cuda_context *ctx, void *device_dst, const void *host_src, size_t bytes,
                         bn_error *err) {
    if (bytes == 0) return BN_OK;
    cudaError_t e = cudaMemcpyAsync(device_dst, host_src, bytes, cudaMemcpyHostToDevice, ctx->stream);
    if (e != cudaSuccess) {
        char op[96];
        snprintf(op, sizeof op, "copy of %zu bytes to the device", bytes);
        return cuda_error(err, e, op);
    }
    return BN_OK;
}

bn_status bn_cuda_sync(bn_cuda_context *ctx, bn_error *err) {
    cudaError_t e = cudaStreamSynchronize(ctx->stream);
    if (ctx->first_error != cudaSuccess) {
        char op[96];
        snprintf(op, sizeof op, "kernel %s", ctx->first_error_op);
        return cuda_error(err, ctx->first_error, op);
    }
    if (e != cudaSuccess) return cuda_error(err, e, "cudaStreamSynchronize");
    return BN_OK;
}

bn_status bn_cuda_download(bn_cuda_context *ctx, void *host_dst, const void *device_src,
                           size_t bytes, bn_error *err) {
    if (bytes) {
        cudaError_t e = cudaMemcpyAsync(host_dst, device_src, bytes, cudaMemcpyDeviceToHost, ctx->stream);
        if (e != cudaSuccess) {
            char op[96];
            snprintf(op, sizeof op, "copy of %zu bytes from the device", bytes);
            return cuda_error(err, e, op);
        }
    }
    return bn_cuda_sync(ctx, err);
}
