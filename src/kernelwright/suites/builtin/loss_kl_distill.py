"""Knowledge-distillation loss of DistilBERT: KL(teacher || student) of temperature-softened
distributions (T = 2), reduction batchmean, times T^2, over BERT's 30522-token vocabulary.
Shapes: 4096 masked-LM positions, student and teacher logits.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

positions = 4096
vocab = 30522
# eager on H100 ~ 3 ms (estimate: 125M fp32 elements = 500 MB per tensor; div, log_softmax, softmax, kl_div move ~21 tensors = 10.5 GB)

KERNELWRIGHT = {
    "shape_variants": [
        {"positions": 100, "vocab": 30001},
        {"positions": 4, "vocab": 30522},
    ],
}


class Model(nn.Module):
    def __init__(self, temperature=2.0):
        super().__init__()
        self.temperature = temperature

    def forward(self, student_logits, teacher_logits):
        t = self.temperature
        loss = F.kl_div(F.log_softmax(student_logits / t, dim=-1), F.softmax(teacher_logits / t, dim=-1),
                        reduction="batchmean")
        return loss * t * t


def get_inputs():
    # A student partway through distillation: it tracks the teacher, with a per-position error level.
    teacher = torch.randn(positions, vocab) * 4.0
    student = teacher + torch.rand(positions, 1) * 3.0 * torch.randn(positions, vocab)
    return [student, teacher]


def get_init_inputs():
    return []
